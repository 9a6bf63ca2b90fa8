package runpool

import "sync"

// waitq is the queue of callers waiting for their turn (waitTurn), first
// come, first served: a connection that comes back goes to the caller
// that has waited longest, handed to it directly (handTo), so no caller
// that came later can take it first and no caller is woken only to lose
// a race for it. A caller keeps its place (its seq) across the waits of
// one acquire. T is what is handed over (a puddle resource).
type waitq[T any] struct {
	mu   sync.Mutex
	seq  uint64
	list []*waiter[T] // by seq, the longest waiting first
}

// waiter is one acquire's place in a waitq.
type waiter[T any] struct {
	seq uint64
	// ch receives at most one message per push: a handed-over value, or
	// nil for a plain wake (a dial ended, the pool closes).
	ch chan *T
}

// newWaiter gives a caller its place, behind every caller before it.
func (q *waitq[T]) newWaiter() *waiter[T] {
	q.mu.Lock()
	q.seq++
	w := &waiter[T]{seq: q.seq, ch: make(chan *T, 1)}
	q.mu.Unlock()
	return w
}

// push queues w at its place.
func (q *waitq[T]) push(w *waiter[T]) {
	q.mu.Lock()
	i := len(q.list)
	for i > 0 && q.list[i-1].seq > w.seq {
		i--
	}
	q.list = append(q.list, nil)
	copy(q.list[i+1:], q.list[i:])
	q.list[i] = w
	q.mu.Unlock()
}

// remove takes w out of the queue; false when it was already taken out
// by handTo or wakeAll, whose message is then in w.ch.
func (q *waitq[T]) remove(w *waiter[T]) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range q.list {
		if x == w {
			q.list = append(q.list[:i], q.list[i+1:]...)
			return true
		}
	}
	return false
}

// handTo hands v to the caller that has waited longest; false when none
// waits.
func (q *waitq[T]) handTo(v *T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.list) == 0 {
		return false
	}
	w := q.list[0]
	q.list[0] = nil
	q.list = q.list[1:]
	w.ch <- v
	return true
}

// wakeAll wakes every caller queued, with no value.
func (q *waitq[T]) wakeAll() {
	q.mu.Lock()
	for i, w := range q.list {
		w.ch <- nil
		q.list[i] = nil
	}
	q.list = q.list[:0]
	q.mu.Unlock()
}

// len is the number of callers queued.
func (q *waitq[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.list)
}
