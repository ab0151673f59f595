package benchpg

import (
	"runtime/metrics"
	"sync"
	"time"
)

// heapInUse are the runtime metrics whose sum is runtime.MemStats.HeapInuse:
// the bytes of the heap's in-use spans.
var heapInUse = []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes"}

// SampleHeap records in *peak the largest heap in use (as
// runtime.MemStats.HeapInuse) seen every 5 ms until stop is called, and once
// more then. It reads runtime/metrics, which does not stop the world as
// runtime.ReadMemStats does: 200 stops a second would preempt the very work
// being measured and add their cost to it.
func SampleHeap(peak *uint64) (stop func()) {
	samples := make([]metrics.Sample, len(heapInUse))
	for i, name := range heapInUse {
		samples[i].Name = name
	}
	var mu sync.Mutex
	sample := func() {
		mu.Lock()
		defer mu.Unlock()
		metrics.Read(samples)
		var sum uint64
		for _, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				sum += s.Value.Uint64()
			}
		}
		*peak = max(*peak, sum)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		sample()
	}
}
