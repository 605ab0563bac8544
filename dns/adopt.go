package dns

// Adopt carries what old learned into h, which replaces it after a config
// reload: the answer cache (entries keep the lifetimes they were stored
// with), the address -> name memory (told h's Learned from now on), the
// query log and the counters, so clients keep their cached answers and
// metrics do not drop to zero. The memoized UDP answers are not carried: the new hosts, block
// lists or split routes may answer differently. Call it before h serves;
// old must not serve afterwards.
func (h *Handler) Adopt(old *Handler) {
	if h.cache != nil && old.cache != nil {
		old.cache.mu.Lock()
		old.cache.maxStale = h.cache.maxStale
		old.cache.mu.Unlock()
		h.cache = old.cache
	}
	old.memory.mu.Lock()
	old.memory.learned = h.memory.learned
	old.memory.mu.Unlock()
	h.memory = old.memory
	h.recent = old.recent
	h.stats.add(&old.stats)
}
