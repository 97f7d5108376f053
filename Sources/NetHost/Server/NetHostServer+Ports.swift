import NetHostCore
import NIOCore

extension NetHostServer {
    /// Brings the open ports in line with the plan (see `ListenChanges`): closes
    /// the ports no longer planned, opens the new ones, moves the ones whose
    /// connections must now live on other loops. Established connections are
    /// never touched.
    func openPlannedPorts() async -> [ListenError] {
        let plan = ListenPlan(services: services.all, options: options)
        for problem in listenProblems(in: plan) {
            logger.error("\(problem)")
            problems.add(problem)
        }
        for bypass in plan.bypasses where warnedBypasses.withLockedValue({ $0.insert(bypass).inserted }) {
            logger.warning("\(bypass)")
        }
        var open: [ListenPlan.Entry: ListenChanges.Loops] = [:]
        for listener in ports.openListeners {
            open[ListenPlan.Entry(service: listener.serviceName, interface: listener.interface, port: listener.port)] =
                Self.identities(of: listener.loops)
        }
        let swiftLoops = self.swiftLoops(for: plan)
        let planned = plan.entries.compactMap { entry -> ListenChanges.Placement? in
            guard let service = services.service(named: entry.service) else { return nil }
            let loops = self.loops(for: service, port: entry.port, swiftLoops: swiftLoops)
            return ListenChanges.Placement(entry: entry, loops: Self.identities(of: loops))
        }
        let changes = ListenChanges(planned: planned, open: open)
        if !changes.closing.isEmpty {
            let closing = changes.closing
            try? await ports.close(where: {
                closing.contains(ListenPlan.Entry(service: $0.serviceName, interface: $0.interface, port: $0.port))
            }).get()
        }
        // Sockets handed over or passed by systemd, taken once (at the start).
        let inheritance = ListenerInheritance(
            entries: changes.opening.map(\.entry), inherited: inheritedListeners.withLockedValue { taken in
                defer { taken = [] }
                return taken
            }
        )
        var opening: [ListenRequest] = []
        var unused = inheritance.unmatched
        for placement in changes.opening {
            let inherited = inheritance.assigned[placement.entry] ?? []
            if let request = request(for: placement, swiftLoops: swiftLoops, inherited: inherited) {
                opening.append(request)
            } else {
                unused += inherited
            }
        }
        for socket in unused {
            logger.notice("inherited listening socket \(socket.logText) is for no port of this config: closing it")
            socket.close()
        }
        let failures = await ports.open(opening)
            + ports.replace(changes.moving.compactMap { request(for: $0, swiftLoops: swiftLoops) })
        for failure in failures { problems.add(failure.description) }
        return failures
    }

    /// Where a service's connections on `port` are accepted: Lua services on the Lua
    /// loop, Swift services on `swiftLoops`, and so are Lua services with direct TLS,
    /// whose handshakes and encryption run there (`NetService.acceptExecutor`).
    /// A per-loop Lua service (`lua_per_loop_services`) accepts on every loop that has
    /// a Lua state: all of them.
    private func loops(for service: NetService, port: Int, swiftLoops: [any EventLoop]) -> [any EventLoop] {
        switch service.acceptExecutor(forPort: port, services: services) {
        case .luaLoop: [luaLoop]
        case .luaPerLoop: otherLuaStates.isEmpty ? [luaLoop] : Array(group.makeIterator())
        case .anyLoop: swiftLoops
        }
    }

    /// The loops Swift services accept on: every loop but the Lua one while Lua
    /// services listen too, so a Lua service kept busy (a flood of handshakes, a
    /// long callback) cannot stall the Swift services; every loop when none does,
    /// or when the Lua loop is the only one. A reload that changes this moves the
    /// Swift services' listeners (`ListenChanges`).
    private func swiftLoops(for plan: ListenPlan) -> [any EventLoop] {
        let all = Array(group.makeIterator())
        let servesLua = plan.entries.contains { entry in
            services.service(named: entry.service)?.executor(forPort: entry.port, services: services) == .luaLoop
        }
        guard all.count > 1, servesLua else { return all }
        return all.filter { $0 !== luaLoop }
    }

    /// nil for a port that cannot serve (a TLS service without a certificate,
    /// reported by `listenProblems`).
    private func request(
        for placement: ListenChanges.Placement, swiftLoops: [any EventLoop], inherited: [InheritedListener] = []
    ) -> ListenRequest? {
        let entry = placement.entry
        guard let service = services.service(named: entry.service) else { return nil }
        if service.usesDirectTLS, tls.settings(forService: service.name) == nil { return nil }
        let context = PipelineContext(
            services: services, settings: liveSettings, logger: logger, tracker: tracker, luaLoop: luaLoop, tls: tls,
            loopLocal: loopLocal
        )
        return ListenRequest(
            serviceName: service.name,
            interface: entry.interface,
            port: entry.port,
            loops: loops(for: service, port: entry.port, swiftLoops: swiftLoops),
            settings: settings,
            inherited: inherited,
            initializeChild: ConnectionSetup.initializer(
                for: service.name, port: entry.port, perAddress: service.listener != nil,
                limiter: service.countsAgainstConnectionLimits ? limiter : nil, context: context
            )
        )
    }

    /// What keeps the planned ports from serving, found without binding: port
    /// options that are wrong, and TLS services without a certificate, whether they
    /// listen themselves or a PROXY port hands its connections to them. `start`
    /// logs these as it opens the ports; `nethost check` reports the same list.
    public func listenProblems() -> [String] {
        listenProblems(in: ListenPlan(services: services.all, options: options))
    }

    private func listenProblems(in plan: ListenPlan) -> [String] {
        var result = plan.problems
        var reported: Set<String> = []
        for entry in plan.entries {
            guard let service = services.service(named: entry.service) else { continue }
            if service.usesDirectTLS, tls.settings(forService: service.name) == nil, reported.insert(service.name).inserted {
                result.append(PipelineContext.MissingCertificate(service: service.name).description)
            }
            if case .pipeline(let pipeline) = service.handling,
               let target = pipeline.handOverTarget(forPort: entry.port),
               services.service(named: target)?.usesDirectTLS == true,
               tls.settings(forService: target) == nil,
               reported.insert("\(entry.port) \(target)").inserted {
                result.append("port \(entry.port) hands its connections to service '\(target)', which uses TLS "
                    + "(encryption = \"ssl\") but no certificate is configured: set ssl = { certificate = ..., key = ... }")
            }
        }
        return result
    }

    private static func identities(of loops: [any EventLoop]) -> ListenChanges.Loops {
        Set(loops.map { ObjectIdentifier($0) })
    }
}

extension NetHostServer {
    /// What `nethost check` finds unsafe or useless in where the services listen:
    /// each pipeline service's own audit (net_proxy: whom it trusts, where its ports
    /// listen), services that nothing can reach (no port of their own, and no
    /// PROXY port handing connections to them), and certificates in force that
    /// expire within 14 days of `now` (`TLSContexts.audit`).
    public func audit(_ plan: ListenPlan, now: Int) -> [AuditFinding] {
        var findings: [AuditFinding] = []
        var reachable = Set(plan.entries.map(\.service))
        for service in services.all {
            guard case .pipeline(let pipeline) = service.handling else { continue }
            let own = plan.entries.filter { $0.service == service.name }
            findings += pipeline.audit(listeningOn: own.map { ListeningAddress(interface: $0.interface, port: $0.port) })
            for entry in own {
                if let target = pipeline.handOverTarget(forPort: entry.port) { reachable.insert(target) }
            }
        }
        for service in services.all where !reachable.contains(service.name) {
            findings.append(AuditFinding(
                .warning,
                "service '\(service.name)' (module \(service.module)) listens on no port and no PROXY port hands connections to it: "
                    + "no one can reach it (set \(service.name)_ports, or map a port to it in proxy_port_mappings)"
            ))
        }
        findings += tls.audit(services: services.all, now: now)
        return findings
    }

    /// `audit(_:now:)` at the wall clock's now.
    public func audit(_ plan: ListenPlan) -> [AuditFinding] {
        audit(plan, now: Self.now())
    }

    /// Logs the certificates in force that expire soon (at start and after a
    /// reload, so a daily reload by logrotate repeats it until someone renews).
    func warnAboutExpiringCertificates() {
        for finding in tls.audit(services: services.all, now: Self.now()) {
            logger.warning("\(finding)")
        }
    }
}
