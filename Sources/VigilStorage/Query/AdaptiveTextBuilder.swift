import VigilCore

/// A memory chunk's text column for values that may or may not repeat
/// within a batch — actor ids, names and emails, resource ids and names: a
/// dictionary while the first rows repeat, stored rows (`StoredTextRows`)
/// once they turn out mostly distinct.
///
/// A dictionary hashes every value and makes a `String` of each new one; for
/// a column whose values are nearly all distinct (a resource id, a user's
/// email across a busy service's batch) that is an allocation per row and
/// a hash that finds nothing, and a flush then gathers the `String`s back
/// into bytes. Stored rows keep the bytes as they came. The decision is
/// taken once per batch, after `sampleRows` rows, so that a column with a few
/// values (a service account, one resource) keeps its dictionary: fewer
/// bytes held, and a filter decided once per value.
struct AdaptiveTextBuilder {
    /// Rows seen before deciding. Small against the thousand-event batches
    /// of a busy agent; a batch this small stays a dictionary.
    static let sampleRows = 64
    /// More distinct values than this among the sampled rows make the
    /// column stored rows (three quarters of them).
    static let storedAbove = 48

    private var dictionary: TextColumn.DictionaryBuilder
    private(set) var isStored = false
    /// Its column in the batch's `StoredTextRows.SharedBuilder`, which holds
    /// its rows once stored.
    private let sharedColumn: Int
    private var rows = 0

    init(capacity: Int, sharedColumn: Int) {
        self.sharedColumn = sharedColumn
        dictionary = TextColumn.DictionaryBuilder(capacity: capacity)
    }

    /// Appends a value given as its bytes; false when they are not valid UTF-8.
    @inline(__always)
    mutating func append(bytes: UnsafeRawBufferPointer, shared: inout StoredTextRows.SharedBuilder) -> Bool {
        if isStored {
            guard isValidUTF8(bytes) else { return false }
            shared.set(row: rows, column: sharedColumn, bytes)
            rows += 1
            return true
        }
        guard dictionary.append(bytes: bytes, accept: { _ in true }) else { return false }
        rows += 1
        if dictionary.rowCount == Self.sampleRows && dictionary.distinctCount > Self.storedAbove { switchToStored(&shared) }
        return true
    }

    /// The sampled rows move to stored rows, which take every row after them.
    private mutating func switchToStored(_ shared: inout StoredTextRows.SharedBuilder) {
        var row = 0
        dictionary.forEachRow { value in
            shared.set(row: row, column: sharedColumn, value)
            row += 1
        }
        dictionary = TextColumn.DictionaryBuilder(capacity: 0)
        isStored = true
    }

    /// The column, its stored rows from `table` (what the shared builder filled).
    func column(in table: StoredTextRows.Table) -> TextColumn {
        isStored ? TextColumn(stored: table.rows(column: sharedColumn)) : dictionary.column
    }
}
