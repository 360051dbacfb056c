// Package storage is Tributary's log engine.
package storage
