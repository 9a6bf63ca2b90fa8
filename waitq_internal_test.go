package runpool

import "testing"

// Values handed over go to the waiters in the order they came, whatever
// order they queued in: before, every waiter was woken and they raced.
func TestWaitqHandsOverFirstComeFirstServed(t *testing.T) {
	var q waitq[int]
	ws := []*waiter[int]{q.newWaiter(), q.newWaiter(), q.newWaiter()}
	q.push(ws[2])
	q.push(ws[0])
	q.push(ws[1])
	for i := range ws {
		v := i
		if !q.handTo(&v) {
			t.Fatalf("handTo %d: nobody waits", i)
		}
	}
	for i, w := range ws {
		if got := <-w.ch; got == nil || *got != i {
			t.Errorf("waiter %d (arrived %d) got %v, want %d", i, i, got, i)
		}
	}
	v := 9
	if q.handTo(&v) {
		t.Error("handTo with an empty queue reported a taker")
	}
}

// A waiter that waits again keeps its place ahead of later ones.
func TestWaitqKeepsAPlaceAcrossWaits(t *testing.T) {
	var q waitq[int]
	early, late := q.newWaiter(), q.newWaiter()
	q.push(late)
	q.push(early)
	if !q.remove(early) { // its limit passed; it looks, then waits again
		t.Fatal("remove of a queued waiter reported it gone")
	}
	q.push(early)
	v := 1
	q.handTo(&v)
	select {
	case got := <-early.ch:
		if got != &v {
			t.Errorf("early waiter got %v", got)
		}
	default:
		t.Error("the value went past the waiter that came first")
	}
}

// A waiter that gives up after being handed a value finds it in its
// channel (remove reports false), so it can pass it on; wakeAll wakes
// everyone with no value.
func TestWaitqRemoveAfterHandOverAndWakeAll(t *testing.T) {
	var q waitq[int]
	a, b, c := q.newWaiter(), q.newWaiter(), q.newWaiter()
	q.push(a)
	v := 7
	q.handTo(&v)
	if q.remove(a) {
		t.Fatal("remove after a hand-over reported the waiter still queued")
	}
	if got := <-a.ch; got != &v {
		t.Fatalf("handed value lost: %v", got)
	}
	q.push(b)
	q.push(c)
	q.wakeAll()
	for _, w := range []*waiter[int]{b, c} {
		if got := <-w.ch; got != nil {
			t.Errorf("wakeAll handed a value %v", got)
		}
	}
	if n := q.len(); n != 0 {
		t.Errorf("%d waiters queued after wakeAll", n)
	}
}
