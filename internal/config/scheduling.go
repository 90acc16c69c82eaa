package config

import (
	"fmt"
	"time"
)

// Defaults of the queen's scheduling settings in config.toml.
const (
	DefaultKeepAlive = 5 * time.Minute
	DefaultMaxQueue  = 128
	// maxMaxQueue bounds max_queue: each waiting request holds a
	// connection and a goroutine in the queen.
	maxMaxQueue = 100_000
)

// Duration is a config.toml duration written as a string in Go's syntax:
// "90s", "5m", "1h30m", or "0".
type Duration time.Duration

// UnmarshalText parses a duration; negative ones are refused.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"90s\", \"5m\" or \"0\"", b)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// KeepAliveOrDefault is keep_alive, or its default when it is not set.
func (c Config) KeepAliveOrDefault() time.Duration {
	if c.KeepAlive == nil {
		return DefaultKeepAlive
	}
	return time.Duration(*c.KeepAlive)
}

// MaxQueueOrDefault is max_queue, or its default when it is not set.
func (c Config) MaxQueueOrDefault() int {
	if c.MaxQueue == 0 {
		return DefaultMaxQueue
	}
	return c.MaxQueue
}

func (c Config) checkScheduling() error {
	if c.MaxQueue < 0 || c.MaxQueue > maxMaxQueue {
		return fmt.Errorf("max_queue must be from 1 to %d, got %d", maxMaxQueue, c.MaxQueue)
	}
	return nil
}
