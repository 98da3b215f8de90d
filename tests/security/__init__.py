"""The security suite: one test per case of issue 17 (what an attacker, a bad catalogue and a crowd find)."""
