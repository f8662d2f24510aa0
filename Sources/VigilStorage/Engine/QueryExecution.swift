import VigilCore
import VigilProto

/// One page of a query over a snapshot: the memory chunks and the blocks of
/// the parts, skipped by their statistics where they cannot match, visited
/// best-first, so that the scan stops as soon as no unvisited source can hold
/// an event that belongs in the page.
struct QueryExecution {
    let store: ColumnarEventStore
    let snapshot: ColumnarEventStore.Snapshot
    let filter: EventFilter
    let newestFirst: Bool
    let cursor: QueryCursor?
    let limit: Int

    /// An event's place in the result order.
    struct Key: Comparable {
        var time: Int64
        var seq: UInt64
        static func < (a: Key, b: Key) -> Bool { (a.time, a.seq) < (b.time, b.seq) }
    }

    enum Source {
        case chunk(MemoryChunk)
        case block(ColumnarEventStore.LivePart, Int)
    }

    func run() throws(VigilError) -> ScanPage {
        // The time range a row must lie in, narrowed by the cursor.
        var low = filter.since
        var high = filter.until == .max ? Int64.max : filter.until - 1  // inclusive
        if let cursor {
            if newestFirst { high = min(high, cursor.occurredAt) } else { low = max(low, cursor.occurredAt) }
        }
        guard low <= high else { return ScanPage(events: [], exhausted: true, visibleSeq: snapshot.visibleSeq, statistics: ScanStatistics()) }

        var sources: [(best: Int64, source: Source)] = []
        for chunk in snapshot.chunks where chunk.maxOccurredAt >= low && chunk.minOccurredAt <= high && chunk.mayContainTenant(of: filter) {
            sources.append((newestFirst ? chunk.maxOccurredAt : chunk.minOccurredAt, .chunk(chunk)))
        }
        for part in snapshot.parts where part.entry.maxOccurredAt >= low && part.entry.minOccurredAt <= high {
            for (index, block) in part.reader.blocks.enumerated()
            where block.maxOccurredAt >= low && block.minOccurredAt <= high && blockMayMatch(block) {
                sources.append((newestFirst ? block.maxOccurredAt : block.minOccurredAt, .block(part, index)))
            }
        }
        sources.sort { newestFirst ? $0.best > $1.best : $0.best < $1.best }

        let now = currentUnixNanos()
        var found: [(key: Key, event: AuditEvent)] = []
        var examined = 0
        var stoppedEarly = false
        let wanted = limit + 1  // one more than the page, to know whether more follow

        for (best, source) in sources {
            if found.count >= wanted {
                sortAndTrim(&found, to: wanted)
                let worst = found[wanted - 1].key.time
                // Every row of this source (and of the ones after it) is worse.
                if newestFirst ? best < worst : best > worst {
                    stoppedEarly = true
                    break
                }
            }
            switch source {
            case .chunk(let chunk):
                let rows = chunk.matchingRows(filter, visibleThrough: snapshot.visibleSeq)
                examined += chunk.count
                for row in rows {
                    let key = Key(time: chunk.occurredAt(at: row), seq: chunk.seq(at: row))
                    guard afterCursor(key), filter.matches(chunk.event(at: row)) else { continue }
                    if let retention = store.options.retention(of: chunk.tenant(at: row)), key.time < now &- retention { continue }
                    found.append((key, chunk.event(at: row)))
                }
            case .block(let part, let index):
                let events = try part.reader.events(block: index)
                examined += events.count
                for event in events {
                    let key = Key(time: event.occurredAt.unixNanos, seq: event.seq)
                    guard afterCursor(key), event.seq <= snapshot.visibleSeq, filter.matches(event), !store.isExpired(event, now: now) else { continue }
                    found.append((key, event))
                }
            }
            if found.count > wanted * 4 { sortAndTrim(&found, to: wanted) }
        }
        sortAndTrim(&found, to: wanted)
        let more = found.count > limit || stoppedEarly
        var statistics = ScanStatistics()
        statistics.rowsExamined = examined
        return ScanPage(events: found.prefix(limit).map(\.event), exhausted: !more, visibleSeq: snapshot.visibleSeq, statistics: statistics)
    }

    private func afterCursor(_ key: Key) -> Bool {
        guard let cursor else { return true }
        let cursorKey = Key(time: cursor.occurredAt, seq: cursor.seq)
        return newestFirst ? key < cursorKey : key > cursorKey
    }

    private func sortAndTrim(_ found: inout [(key: Key, event: AuditEvent)], to count: Int) {
        if newestFirst { found.sort { $0.key > $1.key } } else { found.sort { $0.key < $1.key } }
        if found.count > count { found.removeLast(found.count - count) }
    }

    /// Whether the block's statistics leave room for a match.
    private func blockMayMatch(_ block: BlockMetadata) -> Bool {
        if !filter.tenants.isEmpty && !filter.tenants.contains(where: { block.mayContain(.tenant, $0) }) { return false }
        if !filter.actorIDs.isEmpty && !filter.actorIDs.contains(where: { block.mayContain(.actorID, $0) }) { return false }
        if !filter.resourceIDs.isEmpty && !filter.resourceIDs.contains(where: { block.mayContain(.resourceID, $0) }) { return false }
        if !filter.resourceTypes.isEmpty && !filter.resourceTypes.contains(where: { block.mayContain(.resourceType, $0) }) { return false }
        if filter.actionPrefixes.isEmpty && !filter.exactActions.isEmpty
            && !filter.exactActions.contains(where: { block.mayContain(.action, $0) })
        {
            return false
        }
        return true
    }
}
