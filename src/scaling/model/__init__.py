"""The model: the decoder-only transformer, its parameter and FLOP accounting, Hugging Face import
and export.

Shape legend. Arrays across the repository carry their shape as a suffix, one letter (or short
token) per axis joined by `x`: `x_BxTxD` is (batch rows, positions, model width). An axis that
is several others flattened is written as their product, `x_BTxD` for (B·T, D). Each letter has
this one meaning everywhere:

  B     rows of a batch: sequences, or a task's examples
  Bc    rows the eval step reads at once (a divisor of B, set by `model.loss_chunk_tokens`)
  A     micro-batches of one step (grad_accum)
  Bm    rows of one micro-batch: B / A
  T     positions a row feeds the model (the sequence length)
  Tp1   T + 1: a row's tokens with the last one's target
  Tk    key positions a chunk of queries attends to (a prefix of T)
  C     a chunk: tokens of the fused loss, or queries of the chunked attention
  G     chunks of the fused loss: B·T tokens padded up to G·C
  E     rows of a whole validation sample or task eval set (its eval batches concatenated)
  D     model width (d_model)
  F     MLP width (d_ff)
  V     vocabulary
  H     attention (query) heads
  Hkv   key/value heads (H for full attention, fewer for grouped-query)
  Dh    head dim: D / H
  Dqkv  width of the fused qkv projection: (H + 2·Hkv)·Dh
  R     rotary frequencies: Dh / 2
  I, O  a dense layer's input and output features (D, F or Dqkv, by layer)
  K     runs trained together (the vmapped group axis)
  M     the side of the benchmark's square matrices (bench.measure.matmul_tflops)
  S     steps of a run (the learning-rate table)
  1     an axis of size one, for broadcasting

N is no axis: it keeps its scaling-law meaning, the parameter count. The laws' D (tokens seen)
names exponents and scalars there (`alpha_D`, `a_D`), never an array axis.
"""
