import Testing
@testable import VigilServer

@Suite("OutputGate")
struct OutputGateTests {
    /// Whether `task`'s acquire threw CancellationError. If it queued instead
    /// (the fault these tests pin), it would wait for ever; after 30 s a
    /// release lets it through, so the test fails rather than hangs. The
    /// release happens only then: it is no synchronization of the passing case.
    static func threwCancellation(_ task: Task<Void, any Error>, gate: OutputGate) async -> Bool {
        await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                do {
                    try await task.value
                    return false
                } catch {
                    return error is CancellationError
                }
            }
            group.addTask {
                do {
                    try await Task.sleep(for: .seconds(30))
                    gate.release()
                } catch {}
                return nil
            }
            var threw = false
            for await result in group {
                guard let result else { continue }
                threw = result
                group.cancelAll()
            }
            return threw
        }
    }

    @Test("permits are granted in order and come back on release")
    func permits() async throws {
        let gate = OutputGate(permits: 1)
        try await gate.acquire()
        let waiter = Task { try await gate.acquire() }
        gate.release()
        try await waiter.value
        gate.release()
        try await gate.acquire()
    }

    @Test("a task cancelled before it waits is refused at once, not queued behind the held permit")
    func cancelledBeforeWaiting() async throws {
        let gate = OutputGate(permits: 1)
        try await gate.acquire()
        let cancelled = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await gate.acquire()
        }
        #expect(await Self.threwCancellation(cancelled, gate: gate))
        // The held permit is the only one out: released, the next acquire takes it.
        gate.release()
        try await gate.acquire()
    }

    @Test("a waiter cancelled, whether before or while it waits, throws and takes no permit")
    func cancelledWaiter() async throws {
        let gate = OutputGate(permits: 1)
        try await gate.acquire()
        let waiter = Task { try await gate.acquire() }
        waiter.cancel()
        #expect(await Self.threwCancellation(waiter, gate: gate))
        gate.release()
        try await gate.acquire()
    }
}
