import Testing
import VigilClient
import VigilServer

@Suite("the Welcome's u32 limits")
struct WelcomeClampTests {
    @Test("limits beyond u32 (a library user's configuration) are clamped in the Welcome instead of trapping the server")
    func limitsAreClamped() async throws {
        let tooLarge = Int(UInt32.max) + 1
        try await withTestServer(configure: { configuration in
            configuration.maxConcurrentCalls = tooLarge
            configuration.eventLimits.maxBatchEvents = tooLarge
            configuration.eventLimits.maxEventBytes = tooLarge
        }) { server in
            let client = try await server.connect()
            #expect(client.welcome.maxConcurrentCalls == UInt32.max)
            #expect(client.welcome.maxBatchEvents == UInt32.max)
            #expect(client.welcome.maxEventBytes == UInt32.max)
            await client.close()
        }
    }
}
