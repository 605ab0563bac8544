package status

// ConfigInfo names the config the daemon runs with now (the last
// SetConfig's, else the Config's).
func (s *Server) ConfigInfo() ConfigInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config
}
