"""The compiled kernels of `ictal.models.mamba.cpu_scan` (imported only where numba is installed).

numba compiles each on its first call in a process, per dtype and array layout. Flags: ``contract`` (fused
multiply-add) and, in the backward pass, ``reassoc`` (so that its sums over channels vectorise); no assumptions
about NaN or infinity, so non-finite inputs propagate as they do through the SSD scan and the NaN debugger still
finds their source. Every innermost loop runs over the contiguous channels of one B/C group, which the compiler
vectorises.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

#: Time steps between the states the forward pass keeps for the backward pass, which recomputes the states in between
#: (a segment's worth, in the cache) instead of storing all of them: L / 16 states per sequence instead of L.
CHECKPOINT_STEPS = 16


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def step_factors(
    xbc: Any, dt: Any, decay: Any, i: int, t: int, nheads: int, headdim: int, input_channel: Any, decay_channel: Any
) -> None:
    """Per channel, from its head: dt * x and exp(dt * A) of step t of sequence i."""
    row = xbc[i, t]
    for h in range(nheads):
        step, keep = dt[i, t, h], decay[i, t, h]
        for p in range(headdim):
            j = h * headdim + p
            input_channel[j] = step * row[j]
            decay_channel[j] = keep


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def scan_forward(
    xbc: Any, dt: Any, decay: Any, d: Any, state: Any, y: Any, checkpoints: Any,
    nheads: int, headdim: int, ngroups: int, d_state: int,
) -> None:  # fmt: skip
    """Every sequence, head and time step. Arrays (numpy views of the torch tensors):

    xbc (B, L, H*P + 2*G*N): the conv's output, [x | B | C] per step; dt, decay (B, L, H): the step size and
    exp(dt * A) (computed beforehand by torch's vectorised kernels: one exp per step here would cost more than the
    recurrence); d (H,): skip weights; state (B, G, N, Hg*P): the state h_t laid out so that each state index holds
    the channels of its group's heads side by side (the innermost loop runs over those channels, contiguous, which
    the compiler vectorises); updated in place. y (B, L, H*P): written. checkpoints (B, S, G, N, Hg*P): the state
    before steps 0, CHECKPOINT_STEPS, 2 * CHECKPOINT_STEPS, ... when S > 0 (for the backward pass).
    """
    batch, length, _ = xbc.shape
    hp = nheads * headdim
    group_width = hp // ngroups
    b_at = hp
    c_at = hp + ngroups * d_state
    keep_states = checkpoints.shape[1] > 0
    input_channel = np.empty(hp, dtype=y.dtype)
    decay_channel = np.empty(hp, dtype=y.dtype)
    for i in range(batch):
        for t in range(length):
            if keep_states and t % CHECKPOINT_STEPS == 0:
                checkpoints[i, t // CHECKPOINT_STEPS] = state[i]
            row = xbc[i, t]
            out = y[i, t]
            step_factors(xbc, dt, decay, i, t, nheads, headdim, input_channel, decay_channel)
            for h in range(nheads):
                for p in range(headdim):
                    out[h * headdim + p] = d[h] * row[h * headdim + p]
            for g in range(ngroups):
                group_state = state[i, g]
                base = g * group_width
                for n in range(d_state):
                    b_n = row[b_at + g * d_state + n]
                    c_n = row[c_at + g * d_state + n]
                    s = group_state[n]
                    for k in range(group_width):
                        value = decay_channel[base + k] * s[k] + input_channel[base + k] * b_n
                        s[k] = value
                        out[base + k] += value * c_n


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
def scan_backward(
    xbc: Any, dt: Any, decay: Any, d: Any, checkpoints: Any, grad_y: Any, adjoint: Any,
    grad_xbc: Any, grad_dt: Any, grad_decay: Any, grad_d: Any, nheads: int, headdim: int, ngroups: int, d_state: int,
) -> None:  # fmt: skip
    """The gradients of `scan_forward`, by the adjoint recurrence run backwards in time.

    With lam_t the gradient of the loss with respect to the state h_t (lam_t = decay_{t+1} lam_{t+1} + gy_t C_t^T):
    dC_t = gy_t . h_t, dB_t = lam_t . (dt_t x_t), d(dt_t x_t) = lam_t B_t, d decay_t = lam_t . h_{t-1}, dD = sum gy x,
    and the initial state's gradient is decay_0 lam_0. The states h_t are recomputed per segment of CHECKPOINT_STEPS
    steps from the checkpoints the forward pass kept. Arrays as in `scan_forward`; grad_y (B, L, H*P); adjoint
    (B, G, N, Hg*P): in, the final state's gradient, out, the initial state's; grad_xbc, grad_dt, grad_decay written;
    grad_d (H,) accumulated.
    """
    batch, length, _ = xbc.shape
    hp = nheads * headdim
    group_width = hp // ngroups
    b_at = hp
    c_at = hp + ngroups * d_state
    states = np.empty((CHECKPOINT_STEPS + 1, ngroups, d_state, group_width), dtype=xbc.dtype)
    # Each step's factors, computed while the segment's states are recomputed and read again on the way back.
    input_channels = np.empty((CHECKPOINT_STEPS, hp), dtype=xbc.dtype)
    decay_channels = np.empty((CHECKPOINT_STEPS, hp), dtype=xbc.dtype)
    grad_input = np.empty(hp, dtype=xbc.dtype)
    grad_keep = np.empty(hp, dtype=xbc.dtype)
    for i in range(batch):
        lam = adjoint[i]
        for segment in range(checkpoints.shape[1] - 1, -1, -1):
            t0 = segment * CHECKPOINT_STEPS
            t1 = min(t0 + CHECKPOINT_STEPS, length)
            states[0] = checkpoints[i, segment]
            for t in range(t0, t1):  # states[t - t0 + 1] = h_t
                input_channel, decay_channel = input_channels[t - t0], decay_channels[t - t0]
                step_factors(xbc, dt, decay, i, t, nheads, headdim, input_channel, decay_channel)
                for g in range(ngroups):
                    base = g * group_width
                    for n in range(d_state):
                        b_n = xbc[i, t, b_at + g * d_state + n]
                        before, after = states[t - t0, g, n], states[t - t0 + 1, g, n]
                        for k in range(group_width):
                            after[k] = decay_channel[base + k] * before[k] + input_channel[base + k] * b_n
            for t in range(t1 - 1, t0 - 1, -1):
                row, grad_out, grad_row = xbc[i, t], grad_y[i, t], grad_xbc[i, t]
                input_channel, decay_channel = input_channels[t - t0], decay_channels[t - t0]
                grad_input[:] = 0.0
                grad_keep[:] = 0.0
                for g in range(ngroups):
                    base = g * group_width
                    for n in range(d_state):
                        b_n = row[b_at + g * d_state + n]
                        c_n = row[c_at + g * d_state + n]
                        lam_n = lam[g, n]
                        before, after = states[t - t0, g, n], states[t - t0 + 1, g, n]
                        sum_c = 0.0
                        sum_b = 0.0
                        for k in range(group_width):
                            gy = grad_out[base + k]
                            value = lam_n[k] + gy * c_n  # lam_t
                            lam_n[k] = value
                            sum_c += gy * after[k]
                            sum_b += value * input_channel[base + k]
                            grad_input[base + k] += value * b_n
                            grad_keep[base + k] += value * before[k]
                        grad_row[b_at + g * d_state + n] = sum_b
                        grad_row[c_at + g * d_state + n] = sum_c
                for h in range(nheads):
                    sum_dt = 0.0
                    sum_keep = 0.0
                    sum_d = 0.0
                    step = dt[i, t, h]
                    for p in range(headdim):
                        j = h * headdim + p
                        sum_dt += grad_input[j] * row[j]
                        sum_keep += grad_keep[j]
                        sum_d += grad_out[j] * row[j]
                        grad_row[j] = grad_input[j] * step + grad_out[j] * d[h]
                    grad_dt[i, t, h] = sum_dt
                    grad_decay[i, t, h] = sum_keep
                    grad_d[h] += sum_d
                for g in range(ngroups):  # lam becomes decay_t lam_t, the part of lam_{t-1} from later steps
                    base = g * group_width
                    for n in range(d_state):
                        lam_n = lam[g, n]
                        for k in range(group_width):
                            lam_n[k] *= decay_channel[base + k]
