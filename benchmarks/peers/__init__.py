"""Peers: other toolkits and reference code on semifer's protocols."""
