import ArgumentParser
import Logging
import ServiceLifecycle
import UnixSignals
import VigilServer
import VigilStorage

/// Reloads on SIGHUP what can change while the server runs: the tokens file,
/// retention and tenant retention, the alert rules, the log level. Any other
/// setting that changed is logged as needing a restart. A file with problems
/// is logged with them, and nothing is applied.
struct ConfigurationReloader: Service, CustomStringConvertible {
    /// The parts of the running server a reload changes.
    struct Targets: Sendable {
        let levelControl: LogLevelControl
        let registry: TokenRegistry?
        let store: any EventStore
        /// nil when the server runs no alert engine (no --rules at start).
        let ruleSet: AlertRuleSet?
        /// Where retention and token changes are recorded (`_system`).
        let audit: ReloadAudit
    }

    let hangups: UnixSignalsSequence
    /// `vigil serve`'s command line, resolved again (with the file) on each reload.
    let arguments: [String]
    let initial: (command: ServeCommand, settings: EffectiveSettings)
    let targets: Targets
    let logger: Logger

    /// ServiceLifecycle logs services by description: a name, not every setting.
    var description: String { "ConfigurationReloader" }

    func run() async throws {
        var current = initial
        for await _ in hangups.cancelOnGracefulShutdown() {
            current = await reload(from: current)
        }
    }

    /// One reload: returns the settings now in force.
    func reload(from current: (command: ServeCommand, settings: EffectiveSettings)) async -> (command: ServeCommand, settings: EffectiveSettings) {
        let source = current.command.config.map { "\($0)" } ?? "the command line (no --config)"
        logger.notice("SIGHUP: reloading", metadata: ["vigil.config": "\(source)"])
        // Everything is read and checked first; nothing is applied unless all of it is good.
        let next: (command: ServeCommand, settings: EffectiveSettings)
        let retention: (defaultNanos: Int64?, tenantNanos: [String: Int64])
        var rules: [AlertRule]?
        do {
            next = try ServeCommand.resolve(arguments)
            retention = try next.command.retentionSettings()
            if targets.ruleSet != nil, let path = next.command.rules {
                do { rules = try AlertRule.load(path: path) } catch { throw ValidationError("--rules: \(error)") }
            }
        } catch {
            let problems = (error as? ConfigFileError)?.description ?? ServeCommand.message(for: error)
            logger.error("reload refused; nothing was changed", metadata: ["vigil.problems": "\(problems)"])
            return current
        }
        var applied: [String] = []
        if let registry = targets.registry {
            do {
                let tokens = try registry.reload()
                if !tokens.activated.isEmpty || !tokens.deactivated.isEmpty || !tokens.changed.isEmpty {
                    applied.append("tokens: \(tokens)")
                    await targets.audit.tokensReloaded(tokens, path: registry.path)
                    if !registry.hasActiveAdmin {
                        logger.warning(
                            "after this reload no token is an admin of every tenant: nobody can make tokens, change the default retention or verify until one is restored in \(registry.path), or the server restarts with --admin-token-file")
                    }
                }
            } catch {
                logger.error("reload refused; nothing was changed", metadata: ["vigil.problems": "\(error.message)"])
                return current
            }
        }

        let changed = current.settings.changedKeys(to: next.settings)
        var needsRestart: [String] = []
        // Changes that failed keep their running value, so the next SIGHUP tries them again.
        var failed: [String] = []
        // A retention change refused until a restart: the old command stays
        // too, so that the next reload still sees the change as not made.
        var refused = false
        for key in changed {
            let change = "\(key): \(current.settings.display(key)) -> \(next.settings.display(key))"
            switch key {
            case "log-level":
                targets.levelControl.current = next.command.logLevel
                applied.append(change)
            case "retention":
                switch await setRetention(tenant: nil, nanos: retention.defaultNanos, source: source) {
                case .applied: applied.append(change)
                case .failed: failed.append(key)
                case .refused: needsRestart.append(key); refused = true
                }
            case "tenant-retention":
                let before = (try? current.command.retentionSettings().tenantNanos) ?? [:]
                var outcome = RetentionChange.applied
                for tenant in Set(before.keys).union(retention.tenantNanos.keys).sorted()
                where before[tenant] != retention.tenantNanos[tenant] {
                    // A tenant no longer listed falls back to the default retention.
                    // (Int64.max is a tenant's forever.)
                    let one = await setRetention(tenant: tenant, nanos: retention.tenantNanos[tenant], source: source)
                    if one == .refused { outcome = .refused; break }
                    if one == .failed { outcome = .failed }
                }
                switch outcome {
                case .applied: applied.append(change)
                case .failed: failed.append(key)
                case .refused: needsRestart.append(key); refused = true
                }
            case "rules" where targets.ruleSet != nil && next.command.rules != nil:
                applied.append(change)
            default:
                needsRestart.append(key)
                logger.warning(
                    "\(key) changed in the configuration; it takes effect after a restart",
                    metadata: ["vigil.setting": "\(key)", "vigil.running": "\(current.settings.display(key))", "vigil.configured": "\(next.settings.display(key))"])
            }
        }
        warnAboutFilesForTheNextStart(next.command)
        if let ruleSet = targets.ruleSet, let rules {
            let changes = ruleSet.replace(with: rules)
            if !changes.isEmpty { applied.append("alert rules: \(changes)") }
        }
        if !failed.isEmpty {
            logger.error(
                "reload: \(failed.joined(separator: ", ")) not (or not wholly) applied; send SIGHUP again to retry",
                metadata: ["vigil.failed": "\(failed.joined(separator: ","))"])
        }
        if applied.isEmpty {
            logger.notice("reloaded: nothing to change", metadata: needsRestart.isEmpty ? [:] : ["vigil.needs-restart": "\(needsRestart.joined(separator: ","))"])
        } else {
            var metadata: Logger.Metadata = ["vigil.changed": "\(applied.joined(separator: "; "))"]
            if !needsRestart.isEmpty { metadata["vigil.needs-restart"] = "\(needsRestart.joined(separator: ","))" }
            logger.notice("reloaded: \(applied.joined(separator: "; "))", metadata: metadata)
        }
        // Settings that need a restart keep their running value, so the next reload reports them again.
        // After a failed retention change the old command stays too: the next
        // reload works out the tenants to change from it, removals included.
        return (failed.isEmpty && !refused ? next.command : current.command, next.settings.keeping(needsRestart + failed, from: current.settings))
    }

    /// The files the settings name that only a restart reads (TLS, redaction
    /// rules) are loaded here too, only to be checked: a certificate renewed
    /// into a broken file, or an expired one left in place, would otherwise
    /// be found when the server next starts and then refuses to.
    private func warnAboutFilesForTheNextStart(_ command: ServeCommand) {
        do { _ = try command.tls.serverTLS() } catch {
            logger.error(
                "the TLS files the configuration names would not load at the next start: \(ServeCommand.message(for: error)); the running server keeps the certificate it started with",
                metadata: ["vigil.setting": "tls"])
        }
        if let path = command.redactionRules {
            do { _ = try RedactionPolicy.load(path: path) } catch {
                logger.error(
                    "--redaction-rules \(path) would not load at the next start: \(error); the running server keeps the rules it started with",
                    metadata: ["vigil.setting": "redaction-rules"])
            }
        }
    }

    enum RetentionChange {
        case applied
        /// Worth retrying with the next SIGHUP (a full disk, say).
        case failed
        /// Refused while this server runs (FAILED_PRECONDITION: signed
        /// settings and no key): a retry cannot succeed before a restart.
        case refused
    }

    /// Sets a retention; a change is recorded in `_system`, as the API's are.
    private func setRetention(tenant: String?, nanos: Int64?, source: String) async -> RetentionChange {
        do {
            let (before, after) = try await targets.store.setRetention(tenant: tenant, nanos: nanos)
            if before != after { await targets.audit.retentionChanged(tenant: tenant, before: before, after: after, source: source) }
            return .applied
        } catch {
            logger.error("could not change the retention", metadata: ["vigil.tenant": "\(tenant ?? "*")", "vigil.error": "\(error.message)"])
            return error.code == .failedPrecondition ? .refused : .failed
        }
    }
}
