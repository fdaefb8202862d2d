package store

import (
	"maps"
	"slices"
	"time"
)

// A collector's pool decides whose jobs it is sealed: every member of a
// pool receives the configs, secrets included, of the pool's
// integrations. So the membership carries an integrity MAC, like the
// collector's keys, in a MAC of its own: the pool changes without the
// keys (and the keys without the pool), and a collector whose pool was
// altered keeps its keys and the jobs assigned to it by ID.

// PoolMAC is the MAC of collectorID's membership of pool. Every row
// carries one, no pool ("") included, so that adoption and rotation treat
// every row alike.
func PoolMAC(in *Integrity, collectorID, pool string) []byte {
	return in.Sum(MACCollectorPool, []byte(collectorID), []byte(pool))
}

// CheckPool trusts c.Pool only if mac, read with it, is its MAC under a
// key of in's ring. A membership the platform did not write is dropped
// (c.Pool cleared) and the row flagged PoolTampered. No pool grants
// nothing, so it is never flagged (whatever its MAC).
func CheckPool(in *Integrity, c *Collector, mac []byte) {
	if c.Pool != "" && !in.Verify(mac, MACCollectorPool, []byte(c.ID), []byte(c.Pool)) {
		c.Pool, c.PoolTampered = "", true
	}
}

// ActionPoolsAdopted is the audit action of the one-time adoption that
// MACs the pool memberships written before they carried MACs.
const ActionPoolsAdopted = "collector.pools_adopted"

// maxAdoptedListed bounds the memberships an adoption's audit entry
// lists (it counts them all).
const maxAdoptedListed = 1000

// PoolsAdoptedEvent is the audit entry of an adoption of pool
// memberships (members: collector ID to pool, those in a pool). It
// names what was trusted on the database's word, so that an adoption
// made to run again (by altering the schema) shows in the audit chain.
func PoolsAdoptedEvent(at time.Time, members map[string]string) Event {
	listed := members
	if len(members) > maxAdoptedListed {
		ids := slices.Sorted(maps.Keys(members))[:maxAdoptedListed]
		listed = make(map[string]string, len(ids))
		for _, id := range ids {
			listed[id] = members[id]
		}
	}
	return Event{Time: at, Actor: "platform", Action: ActionPoolsAdopted, Target: "collectors",
		Details: map[string]any{"collectors": len(members), "members": listed}}
}

// Members returns the collectors of list still in pool once read:
// those whose membership failed its MAC are in no pool.
func Members(list []Collector, pool string) []Collector {
	return slices.DeleteFunc(list, func(c Collector) bool { return c.Pool != pool })
}
