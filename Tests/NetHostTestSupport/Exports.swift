// The test client, free ports and FixtureError come from SocketTestSupport, which
// the end-to-end tests use without NetHost; a test that imports NetHostTestSupport
// gets them with it.
@_exported import SocketTestSupport
