// Package rediskey names the engine's part of the Redis keyspace: every key the stores keep
// starts with Prefix, so one Redis can hold other data beside the engine's.
package rediskey

// Prefix is the default start of every key the engine keeps (asynq's own keys aside).
const Prefix = "bf:"
