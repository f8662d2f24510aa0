import Synchronization
import Testing

@testable import VigilServer

@Suite("A call's deadline timer")
struct CallContextTests {
    @Test("cancelled once when the call finishes, and at once when armed after the call finished")
    func deadlineTimerIsCancelled() {
        let cancelled = Atomic<Int>(0)
        let running = CallContext(streamID: 1, initialCredit: 0)
        running.armDeadline { cancelled.add(1, ordering: .relaxed) }
        #expect(cancelled.load(ordering: .relaxed) == 0)
        running.disarmDeadline()
        #expect(cancelled.load(ordering: .relaxed) == 1)
        running.disarmDeadline()
        #expect(cancelled.load(ordering: .relaxed) == 1)

        // The read loop arms the timer at HEADERS, before the call's task
        // exists; finishing first is guarded anyway (arming could move later).
        let quick = CallContext(streamID: 3, initialCredit: 0)
        quick.disarmDeadline()
        quick.armDeadline { cancelled.add(1, ordering: .relaxed) }
        #expect(cancelled.load(ordering: .relaxed) == 2)
    }
}
