import Synchronization

/// The server's open connections: counted for `maxConnections`, and found by
/// token when one is revoked (revocation closes them too).
final class LiveConnections: Sendable {
    private struct Entry {
        var tokenID: String?
        var onRevoke: (@Sendable () -> Void)?
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// Takes a slot for a new connection; nil when the server is full.
    func admit() -> UInt64? {
        state.withLock { state in
            guard state.entries.count < limit else { return nil }
            state.nextID += 1
            state.entries[state.nextID] = Entry()
            return state.nextID
        }
    }

    /// The connection authenticated with `tokenID`; `onRevoke` closes it.
    func authenticated(_ id: UInt64, tokenID: String?, onRevoke: @escaping @Sendable () -> Void) {
        state.withLock { state in
            state.entries[id]?.tokenID = tokenID
            state.entries[id]?.onRevoke = onRevoke
        }
    }

    func remove(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    var count: Int { state.withLock { $0.entries.count } }

    /// Closes every connection authenticated with `tokenID`. Returns how many.
    @discardableResult
    func revoke(tokenID: String) -> Int {
        let callbacks = state.withLock { state in
            state.entries.values.filter { $0.tokenID == tokenID }.compactMap(\.onRevoke)
        }
        for callback in callbacks { callback() }
        return callbacks.count
    }
}
