package jobs

import "context"

// SchedulerStep returns one look of a new scheduler, what RunScheduler
// does on each tick, so that tests move the clock and call it instead of
// waiting for the ticker.
func (s *Service) SchedulerStep() func(context.Context) { return s.newScheduler().tick }
