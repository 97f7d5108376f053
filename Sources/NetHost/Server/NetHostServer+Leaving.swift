/// The first step of a graceful stop, before the listeners close.
extension NetHostServer {
    /// Says the server is leaving (`status.isLeaving`: the `agent_check` module
    /// answers `drain` from now on) and, when a module asked for notice
    /// (`agent_check_drain_time`), keeps the ports open and serving that long, so a
    /// load balancer polling the agent stops sending new connections before they
    /// close. Closing at once instead would reset the connections the kernel had
    /// already accepted for us, and refuse the ones the balancer sends until its
    /// next check. HAProxy's own `grace` does the same for the balancers in front of
    /// it. Cut short by `stopNow()` (a second SIGTERM) or cancellation.
    func announceLeaving() async {
        let notice = status.beginLeaving()
        guard notice > .zero, !ports.openListeners.isEmpty else { return }
        let seconds = Double(notice.nanoseconds) / 1e9
        logger.info("leaving: the agent check answers drain; the ports stay open \(seconds) s more (agent_check_drain_time)")
        _ = await hurry.wait(upTo: notice, on: group.next())
    }
}
