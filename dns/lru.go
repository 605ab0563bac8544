package dns

// lru is a map with a recency list: get and put move an entry to the front,
// and put evicts from the back beyond max entries. It does no locking; its
// owners (cache, Memory) hold their own mutex around every call.
type lru[K comparable, V any] struct {
	max  int
	m    map[K]*lruNode[K, V]
	root lruNode[K, V] // sentinel: root.next is the newest, root.prev the oldest
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruNode[K, V]
}

// newLRU returns an empty lru holding at most max (>= 1) entries.
func newLRU[K comparable, V any](max int) *lru[K, V] {
	l := &lru[K, V]{max: max, m: make(map[K]*lruNode[K, V])}
	l.root.next, l.root.prev = &l.root, &l.root
	return l
}

func (l *lru[K, V]) len() int { return len(l.m) }

// get returns the value under k and marks it most recently used.
func (l *lru[K, V]) get(k K) (V, bool) {
	n, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.moveFront(n)
	return n.val, true
}

// put stores v under k as the most recently used entry and returns how many
// entries were evicted to stay within max.
func (l *lru[K, V]) put(k K, v V) (evicted int) {
	if n, ok := l.m[k]; ok {
		n.val = v
		l.moveFront(n)
		return 0
	}
	n := &lruNode[K, V]{key: k, val: v}
	l.m[k] = n
	l.link(n)
	for len(l.m) > l.max {
		l.remove(l.root.prev.key)
		evicted++
	}
	return evicted
}

// remove deletes k if present.
func (l *lru[K, V]) remove(k K) {
	n, ok := l.m[k]
	if !ok {
		return
	}
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
	delete(l.m, k)
}

func (l *lru[K, V]) link(n *lruNode[K, V]) {
	n.prev, n.next = &l.root, l.root.next
	l.root.next.prev = n
	l.root.next = n
}

func (l *lru[K, V]) moveFront(n *lruNode[K, V]) {
	if l.root.next == n {
		return
	}
	n.prev.next, n.next.prev = n.next, n.prev
	l.link(n)
}
