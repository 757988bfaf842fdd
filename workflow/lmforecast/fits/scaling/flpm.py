"""FLP-M's stage 2 (Chen et al. 2024): per-domain losses -> score by a small two-layer network.

Inputs are standardised with the training points' mean and spread; the network is
tanh(W1 x + b1) -> linear, trained full-batch by L-BFGS-B on mean squared error with a
little weight decay (it has more weights than a small sweep has checkpoints). Several
restarts from fixed seeds; the lowest training loss wins. Deterministic on CPU.
"""

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch.nn.utils import parameters_to_vector, vector_to_parameters

HIDDEN = 8
WEIGHT_DECAY = 1e-3


@dataclass
class DomainNet:
    mean: np.ndarray
    std: np.ndarray
    net: torch.nn.Module
    train_mse: float

    def predict(self, x) -> np.ndarray:
        with torch.no_grad():
            z = torch.as_tensor((np.asarray(x, float) - self.mean) / self.std, dtype=torch.float64)
            return self.net(z).squeeze(-1).numpy()

    def state(self) -> dict:
        return {k: v.clone() for k, v in self.net.state_dict().items()}


def _net(n_in: int, seed: int):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1)).double()


def fit_domain_net(x, y, restarts: int = 3, seed: int = 0, start: dict | None = None, steps: int = 500) -> DomainNet:
    """x: (points, domains) losses; y: scores. `start`: a fitted net's state to refit from (bootstrap).

    Gradients by torch, steps by scipy's L-BFGS-B on the flattened weights (torch's own LBFGS
    costs most of a second per construction, times hundreds of bootstrap refits).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-12
    xt = torch.as_tensor((x - mean) / std)
    yt = torch.as_tensor(y)
    best = None
    for r in range(1 if start else restarts):
        net = _net(x.shape[1], seed + r)
        if start:
            net.load_state_dict(start)
        weights = [p for n, p in net.named_parameters() if n.endswith("weight")]

        def objective(theta):
            vector_to_parameters(torch.as_tensor(theta), net.parameters())
            net.zero_grad()
            loss = torch.mean((net(xt).squeeze(-1) - yt) ** 2) + WEIGHT_DECAY * sum((w**2).sum() for w in weights)
            loss.backward()
            return float(loss.detach()), torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy()

        theta0 = parameters_to_vector(net.parameters()).detach().numpy().copy()
        result = minimize(objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": steps})
        vector_to_parameters(torch.as_tensor(result.x), net.parameters())
        with torch.no_grad():
            mse = float(torch.mean((net(xt).squeeze(-1) - yt) ** 2))
        if best is None or mse < best.train_mse:
            best = DomainNet(mean, std, net, mse)
    return best
