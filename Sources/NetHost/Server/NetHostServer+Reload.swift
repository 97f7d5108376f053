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
    /// Options read at start only (`plugin_paths`, the Lua state's limits) keep
    /// their value, and a warning names each one the new config changed; so does
    /// one for the `network_settings` keys a port that stays open keeps.
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
        let registry = OptionRegistry(nativeModules: configuration.nativeModules)
        for option in registry.startOnlyChanges(from: startOptions, to: newOptions) {
            if let warning = option.restartWarning { logger.warning("\(warning)") }
        }
        // The primary state took the new config: the other loops' states follow it
        // (their Lua modules only; a module that fails there is logged, as here).
        await reloadOtherLuaStates()
        let settings = Self.networkSettings(from: newOptions, logger: logger, problems: problems)
        let portSettings = Self.portSettingsChanged(from: liveSettings.value, to: settings)
        if !portSettings.isEmpty, !ports.openListeners.isEmpty {
            let names = portSettings.map { "network_settings.\($0)" }.joined(separator: ", ")
            let warning = "\(names) changed: the ports already open keep the old value (it is set when a port opens); "
                + "ports this reload opens or moves use the new one, and a restart applies it to every port"
            logger.warning("\(warning)")
        }
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

    /// The keys of `network_settings` set on a port when it opens (its listen backlog,
    /// and the options its connections get from it) that differ between two settings.
    static func portSettingsChanged(from old: NetworkSettings, to new: NetworkSettings) -> [String] {
        var changed: [String] = []
        if old.tcpBacklog != new.tcpBacklog { changed.append("tcp_backlog") }
        if old.tcpNoDelay != new.tcpNoDelay { changed.append("tcp_nodelay") }
        if old.tcpKeepalive != new.tcpKeepalive { changed.append("tcp_keepalive") }
        if old.readSize != new.readSize { changed.append("read_size") }
        return changed
    }
}
