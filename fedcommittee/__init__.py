"""fedcommittee: committee-validated federated learning on Hyperledger Fabric and IPFS."""

__version__ = "0.1.0"
