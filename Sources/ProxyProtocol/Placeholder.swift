enum ProxyProtocolPlaceholder {}
