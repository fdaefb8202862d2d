// Package notify wakes in-process waiters when a collector's queue may have
// work: one broadcast channel per collector, closed on each notification, so
// a long-polling Next sleeps instead of polling the store.
package notify
