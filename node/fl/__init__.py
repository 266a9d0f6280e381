"""Federated learning (DESIGN §6): horizontal FedAvg over the secure sum, vertical
logistic regression with Paillier, and vertical batch scoring. See docs/fl.md."""
