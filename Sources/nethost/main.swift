print("nethost")
