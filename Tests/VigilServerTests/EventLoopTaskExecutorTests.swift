import NIOCore
import NIOPosix
import Testing
import VigilWire

@Suite("Event loop task executor")
struct EventLoopTaskExecutorTests {
    @Test("a task preferring a loop's executor runs on that loop, across awaits and in its child tasks")
    func runsOnTheLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let loop = loops[0], other = loops[1]
        let executor = EventLoopTaskExecutor(loop)
        let (before, afterFuture, afterYield, inChild) = try await withTaskExecutorPreference(executor) {
            let before = loop.inEventLoop
            // A future the other loop completes: the task comes back to its own.
            _ = try await other.submit { 42 }.get()
            let afterFuture = loop.inEventLoop
            await Task.yield()
            let afterYield = loop.inEventLoop
            let inChild = await withTaskGroup(of: Bool.self) { children in
                children.addTask { loop.inEventLoop }
                return await children.next() ?? false
            }
            return (before, afterFuture, afterYield, inChild)
        }
        #expect(before)
        #expect(afterFuture)
        #expect(afterYield)
        #expect(inChild)
        #expect(!loop.inEventLoop, "outside the preference the test runs elsewhere")
        try await group.shutdownGracefully()
    }
}
