import NetHostConfig
import NetHostCore

extension NetHostServer {
    /// Why a reload changed nothing.
    public struct ReloadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Applies a new config without a restart: the options modules read, the
    /// network settings and limits for new connections, modules added to or
    /// removed from `modules_enabled`, each native module's own options
    /// (net_proxy's mappings and trust list), and the ports that follow from
    /// them, and the TLS certificates and settings. Established connections keep
    /// their service and settings. If a module refuses the new options, nothing
    /// changes; a certificate that fails to load leaves the one before in force.
    public func reload(_ newOptions: any OptionSource) async throws {
        let previous = options.snapshot
        options.replace(with: newOptions)
        let modules = self.modules
        do {
            try await luaLoop.submit { try modules.value.reload() }.get()
        } catch {
            options.replace(with: previous)
            throw ReloadError(description: "\(error)")
        }
        warnIfPerLoopChanged(in: newOptions)
        // The primary state took the new config: the other loops' states follow it
        // (their Lua modules only; a module that fails there is logged, as here).
        await reloadOtherLuaStates()
        let settings = Self.networkSettings(from: newOptions, logger: logger, problems: problems)
        liveSettings.value = settings
        shutdownTimeout.value = Self.shutdownTimeout(from: newOptions, logger: logger, problems: problems)
        limiter.maximum = settings.maxConnections
        limiter.maximumPerAddress = settings.maxConnectionsPerIP
        limiter.shedIdleAfter = settings.shedIdleAfterAmount
        // Certificates are read again (a renewed one is served to new connections);
        // one that fails to load leaves the one loaded before in place.
        do {
            report(try tls.load(
                options: options, services: services.all, baseDirectory: configuration.configDirectory,
                reloading: true, now: Self.now()
            ))
        } catch {
            logger.error("\(error)")  // not thrown when reloading
        }
        warnAboutExpiringCertificates()
        let failures = await openPlannedPorts()
        // As Prosody fires it once a new config is in force; modules that cache an
        // option or reopen a resource hook it.
        await onEveryLuaState { $0.fireEvent("config-reloaded") }
        logger.info("config reloaded\(failures.isEmpty ? "" : " (\(failures.count) ports failed to open)")")
    }
}
