import Foundation
import VigilCore
import VigilProto

/// Signed retention settings: the server's word on how long events are kept.
///
/// Removal statements prove that the server removed events, and record the
/// retention it applied; they cannot prove that retention was the one its
/// operators chose. `RETENTION` lives in the data directory and wins over
/// the flags, so whoever could write that directory could shorten a
/// tenant's retention (or lift its legal hold) and let the next start
/// delete genuinely, with genuine statements. With a checkpoint key every
/// change to the settings is signed into the checkpoint directory before
/// `RETENTION` is written, as `settings-<16 hex generation>.retention`; at
/// start the highest generation is in force, and a `RETENTION` file that
/// differs from it is set aside and replaced by the signed one
/// (`RetentionSettings.reconcile`). Verify reports the difference.
///
/// Each statement records the file (present or not, its exact bytes) and the
/// settings in force. An online backup records those as its `RETENTION`, and
/// signs them so into its own copy of the statements (a generation of its
/// own; `RetentionSettings.pinnedByBackup`).
extension RetentionStatements {
    /// A SETTINGS statement as read and checked.
    public struct SignedSettings: Sendable, Equatable {
        public var generation: UInt64
        /// The `RETENTION` file's bytes; nil: there was none (the flags alone decided).
        public var file: [UInt8]?
        /// The settings in force, as a complete `RETENTION` file.
        public var inForce: [UInt8]
        public var cause: String
        public var createdAt: Int64
        public var publicKey: CheckpointPublicKey

        /// Whether the data directory's `RETENTION` (`found`, nil: none) is
        /// the file this statement signed. Only that: a file that held the
        /// settings in force instead would pin today's flags over tomorrow's,
        /// and a backup that records them so signs them (`pinnedByBackup`).
        public func accepts(_ found: [UInt8]?) -> Bool { found == file }
    }

    /// The largest settings statement read (two copies of `RETENTION`: about
    /// 200,000 tenants with their own retention). `RetentionSettings.set`
    /// refuses a change whose statement would not fit.
    public static let maximumSettingsBytes = 16 * 1024 * 1024

    static let settingsPrefix = "settings-"

    public static func settingsFileName(generation: UInt64) -> String {
        settingsPrefix + hex16(generation) + fileExtension
    }

    /// The generation a settings statement's name carries, nil for another name.
    static func settingsGeneration(ofFileName name: String) -> UInt64? {
        guard name.hasPrefix(settingsPrefix), name.hasSuffix(fileExtension) else { return nil }
        let digits = name.dropFirst(settingsPrefix.count).dropLast(fileExtension.count)
        guard digits.count == 16 else { return nil }
        return UInt64(digits, radix: 16)
    }

    /// The settings statements in `directory` by name, highest generation first.
    public static func settingsNames(in directory: String) throws(VigilError) -> [(name: String, generation: UInt64)] {
        try names(in: directory).compactMap { name in settingsGeneration(ofFileName: name).map { (name, $0) } }
            .sorted { $0.generation > $1.generation }
    }

    /// The settings statement at `path`, once its signature holds (under
    /// `trusted`, when given) and its generation is the one its name says.
    public static func readSettings(_ path: String, trusted: CheckpointPublicKey?) -> Result<SignedSettings, VigilError> {
        read(path, trusted: trusted, maxBytes: maximumSettingsBytes).flatMap { statement, checked in
            guard statement.reason == .settings, statement.hasSettings, Fact(statement) == nil else {
                return .failure(VigilError(.dataLoss, "it is not a SETTINGS statement"))
            }
            let record = statement.settings
            let name = String(path.split(separator: "/").last ?? "")
            guard settingsGeneration(ofFileName: name) == record.generation else {
                return .failure(VigilError(.dataLoss, "it signs generation \(record.generation), not the one its name says"))
            }
            return .success(SignedSettings(
                generation: record.generation, file: record.filePresent ? Array(record.file) : nil, inForce: Array(record.inForce),
                cause: record.cause, createdAt: checked.createdAt, publicKey: checked.publicKey))
        }
    }

    /// The settings in force by the statements of `directory`.
    public enum LatestSettings: Sendable {
        /// No settings statement at all: settings were never signed here.
        case none
        /// The highest generation's statement.
        case signed(SignedSettings)
        /// The highest generation's statement cannot be trusted (`name`:
        /// its file; `error`: why). Nothing can be said to be in force.
        case untrusted(name: String, generation: UInt64, error: VigilError)
    }

    /// The settings statement of the highest generation in `directory`. A
    /// lower one never stands in for it: a damaged latest statement would
    /// otherwise bring back settings that were since changed.
    public static func latestSettings(in directory: String, trusted: CheckpointPublicKey?) throws(VigilError) -> LatestSettings {
        guard let (name, generation) = try settingsNames(in: directory).first else { return .none }
        switch readSettings(directory + "/" + name, trusted: trusted) {
        case .success(let settings): return .signed(settings)
        case .failure(let error): return .untrusted(name: name, generation: generation, error: error)
        }
    }

    /// A settings statement, signed, as the bytes of its file.
    static func settingsStatement(
        generation: UInt64, file: [UInt8]?, inForce: [UInt8], cause: String, key: CheckpointKey, now: Int64
    ) throws(VigilError) -> [UInt8] {
        guard (file?.count ?? 0) + inForce.count + 64 * 1024 <= maximumSettingsBytes else {
            throw VigilError(
                .resourceExhausted,
                "the retention settings (\(inForce.count) bytes as a RETENTION file) are too large to sign (a statement holds at most \(maximumSettingsBytes / 2) bytes of them); remove tenant settings that match the default")
        }
        var statement = Vigil_V1_RetentionStatement()
        statement.formatVersion = formatVersion
        statement.reason = .settings
        statement.createdAtNanos = now
        statement.retention = RetentionSettings.summary(ofFile: inForce)
        statement.settings.generation = generation
        statement.settings.filePresent = file != nil
        statement.settings.file = Data(file ?? [])
        statement.settings.inForce = Data(inForce)
        statement.settings.cause = cause
        return try signedBytes(statement, key: key)
    }

    /// Signs settings as generation `generation` into `signer.directory`,
    /// durably. Returns the path written.
    @discardableResult
    public static func signSettings(
        generation: UInt64, file: [UInt8]?, inForce: [UInt8], cause: String, signer: Signer, now: Int64 = currentUnixNanos()
    ) throws(VigilError) -> String {
        let bytes = try settingsStatement(generation: generation, file: file, inForce: inForce, cause: cause, key: signer.key, now: now)
        let path = signer.directory + "/" + settingsFileName(generation: generation)
        // Never over a generation signed before: the caller's count is off.
        guard !FileIO.exists(path) else {
            throw VigilError(.alreadyExists, "\(path) exists already: generation \(generation) of the retention settings was signed before")
        }
        try FileIO.makeDirectory(signer.directory)
        try FileIO.writeAtomically(bytes, to: path)
        return path
    }
}
