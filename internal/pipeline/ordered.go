package pipeline

import (
	"context"
	"sync"
)

// outcome is the result of one item's fetch.
type outcome[T any] struct {
	Index int
	Value T
	Err   error
}

// ordered fetches the items 0..n-1 concurrently and hands their outcomes back in item order,
// so a slow item never lets a later one overtake it while the others keep the source busy.
// At most concurrency fetches run at once, and at most ahead items are fetched (or being
// fetched) before the consumer has taken them, which bounds memory and what a stop wastes.
// Stop lets the fetches already started finish and be handed back; Close cancels them.
// Close must be called, and leaves no goroutine behind.
type ordered[T any] struct {
	results chan chan outcome[T]
	sem     chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// mu makes "stopped" and starting a fetch exclusive: once Stop returns, nothing starts.
	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
}

// fetchOrdered starts fetching n items with fetch; see ordered.
func fetchOrdered[T any](ctx context.Context, n, concurrency, ahead int, fetch func(ctx context.Context, i int) (T, error)) *ordered[T] {
	ctx, cancel := context.WithCancel(ctx)
	o := &ordered[T]{
		// One outcome more than the buffer waits in the producer's hand, hence ahead-1.
		results: make(chan chan outcome[T], max(ahead, 1)-1),
		sem:     make(chan struct{}, max(concurrency, 1)),
		cancel:  cancel,
		stop:    make(chan struct{}),
	}
	o.wg.Add(1)
	go o.produce(ctx, n, fetch)
	return o
}

func (o *ordered[T]) produce(ctx context.Context, n int, fetch func(context.Context, int) (T, error)) {
	defer o.wg.Done()
	defer close(o.results)
	for i := range n {
		ch := make(chan outcome[T], 1)
		if ctx.Err() == nil {
			select {
			case o.sem <- struct{}{}:
			case <-o.stop:
				return
			case <-ctx.Done():
			}
		}
		if err := ctx.Err(); err != nil {
			// Say why the items end early, so the consumer cannot take it for the end.
			ch <- outcome[T]{Index: i, Err: err}
			o.results <- ch
			return
		}
		if !o.start(ctx, i, ch, fetch) {
			<-o.sem
			return
		}
		o.results <- ch
	}
}

// start launches item i's fetch unless the fetcher was stopped.
func (o *ordered[T]) start(ctx context.Context, i int, ch chan<- outcome[T], fetch func(context.Context, int) (T, error)) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return false
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer func() { <-o.sem }()
		v, err := fetch(ctx, i)
		ch <- outcome[T]{Index: i, Value: v, Err: err}
	}()
	return true
}

// Next waits for the next item's outcome, in item order. It reports false when every item
// was handed back, or after Stop once the fetches already started were.
func (o *ordered[T]) Next() (outcome[T], bool) {
	ch, ok := <-o.results
	if !ok {
		return outcome[T]{}, false
	}
	return <-ch, true
}

// Stop starts no further fetch; Next still hands back the ones already started. It is safe
// to call more than once and from any goroutine.
func (o *ordered[T]) Stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.stopped {
		o.stopped = true
		close(o.stop)
	}
}

// Close stops the fetcher, cancels the fetches still running, drops the outcomes not taken
// and waits until every goroutine it started has ended. It is safe to call more than once,
// but not while another goroutine is in Next.
func (o *ordered[T]) Close() {
	o.Stop()
	o.cancel()
	for ch := range o.results {
		<-ch
	}
	o.wg.Wait()
}
