enum ProxyModulePlaceholder {}
