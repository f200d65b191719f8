package httpapi

// Routes lists every route the server registers as "METHOD pattern", with whether it is
// public.
func (s *Server) Routes() map[string]bool {
	out := map[string]bool{}
	for _, rt := range s.routes {
		out[rt.method+" "+rt.pattern] = rt.public
	}
	return out
}
