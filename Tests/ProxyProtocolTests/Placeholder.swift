import Testing
@Test func placeholderProxyProtocolTests() { #expect(true) }
