package core

import (
	"slices"
)

// queue is a FIFO that grows on demand and gives memory back when it drains,
// so an idle session costs nothing.
type queue[T any] struct {
	items []T
	head  int
}

func (q *queue[T]) len() int { return len(q.items) - q.head }

func (q *queue[T]) push(v T) { q.items = append(q.items, v) }

// peek returns the oldest item; the queue must not be empty.
func (q *queue[T]) peek() T { return q.items[q.head] }

// tail returns the newest item; the queue must not be empty.
func (q *queue[T]) tail() *T { return &q.items[len(q.items)-1] }

// each calls f with every item, oldest first.
func (q *queue[T]) each(f func(*T)) {
	for i := q.head; i < len(q.items); i++ {
		f(&q.items[i])
	}
}

// pop removes and returns the oldest item; the queue must not be empty.
func (q *queue[T]) pop() T {
	var zero T
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	switch {
	case q.head == len(q.items):
		q.items = q.items[:0]
		q.head = 0
		if cap(q.items) > 64 {
			q.items = nil
		}
	case q.head > 32 && q.head*2 > len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	return v
}

// filter keeps the items for which keep returns true, in order.
func (q *queue[T]) filter(keep func(*T) bool) {
	n := 0
	for i := q.head; i < len(q.items); i++ {
		if keep(&q.items[i]) {
			q.items[n] = q.items[i]
			n++
		}
	}
	clear(q.items[n:])
	q.items = q.items[:n]
	q.head = 0
}

// clear empties the queue and releases its memory.
func (q *queue[T]) clear() {
	q.items = nil
	q.head = 0
}

// sortIDs orders packet identifiers oldest first, given the last one
// allocated: identifiers are handed out in increasing order, wrapping.
func sortIDs(ids []uint16, last uint16) {
	slices.SortFunc(ids, func(a, b uint16) int {
		return int(a-last-1) - int(b-last-1)
	})
}
