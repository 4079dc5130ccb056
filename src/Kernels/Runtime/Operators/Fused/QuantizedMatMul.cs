using System.Buffers;
using System.Runtime.InteropServices;
using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// DequantizeLinear(x) and DequantizeLinear(constant w) into MatMul or Gemm (bias, Relu/Clip) into QuantizeLinear, as one
/// node (see <see cref="Planning.QdqLinearFusion"/>; inputs in <see cref="QdqNodeInputs"/>): the exact int32 product
/// <c>(x - zx)(w - zw[n])</c> on <see cref="Int8Gemm"/> with w packed once at load (transposed for Gemm's transB),
/// every leading axis of x taken as rows, then <see cref="QuantizedOutputStage"/> writes 8-bit values or floats.
/// Attributes: <c>transB</c>, <c>alpha</c>, <c>beta</c> (Gemm), <c>gemm</c> (1: x must be 2-D, as Gemm's A).
/// </summary>
[OnnxOperator("QuantizedMatMul", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class QuantizedMatMul(PackedInt8Matrix weights, bool gemm, int zeroPoint, TensorElementType? inputType, QuantizedOutputStage stage) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        bool transB = context.Int("transB", 0) != 0, gemm = context.Int("gemm", 0) != 0;
        var w = QdqNodeInputs.Weights(context);
        if (w.Rank != 2) throw context.Unsupported($"weights of shape {Tensor.Format(w.Shape)} (2-D only)");
        int k = transB ? w.Shape[1] : w.Shape[0], n = transB ? w.Shape[0] : w.Shape[1];
        var (zeroPoint, inputType) = QdqNodeInputs.Activation(context);
        int[] zeroPoints = QdqNodeInputs.WeightZeroPoints(context, n);
        if (zeroPoints.Length == 0) zeroPoints = [0];
        var stage = QdqNodeInputs.Stage(context, n, context.Float("alpha", 1f), context.Float("beta", 1f));
        var bytes = QuantizationInputs.Bytes(w);
        var packed = w.ElementType == TensorElementType.Int8
            ? PackedInt8Matrix.Pack(MemoryMarshal.Cast<byte, sbyte>(bytes), k, n, zeroPoints, transB)
            : PackedInt8Matrix.Pack(bytes, k, n, zeroPoints, transB);
        return new QuantizedMatMul(packed, gemm, zeroPoint, inputType, stage);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(QdqNodeInputs.X);
        string node = call.Context.Node;
        if (x.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8) || (inputType is { } expected && x.ElementType != expected))
            throw new InvalidOperationException($"{node}: the input is {x.ElementType.DisplayName()}, but its zero point is {inputType?.DisplayName() ?? "8-bit"}.");
        int k = weights.Depth, n = weights.Columns;
        if (x.Rank == 0 || x.Shape[^1] != k || (gemm && x.Rank != 2))
            throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} does not fit weights of depth {k}{(gemm ? " (Gemm needs 2-D A)" : "")}.");
        int[] shape = x.ShapeArray.ToArray();
        shape[^1] = n;
        var y = call.Output(0, stage.OutputType, shape);
        int rows = x.Length / Math.Max(1, k);
        if (k == 0) rows = Tensor.CountElements(x.Shape[..^1]);
        int[] sums = ArrayPool<int>.Shared.Rent(rows * n);
        try
        {
            var acc = sums.AsSpan(0, rows * n);
            Int8Gemm.MultiplyInt32(QuantizationInputs.Bytes(x), rows, zeroPoint, x.ElementType == TensorElementType.Int8, weights, acc, call.Context.DegreeOfParallelism);
            var output = stage.OutputType == TensorElementType.Float32 ? MemoryMarshal.AsBytes(y.AsSpan<float>()) : QuantizationInputs.Bytes(y);
            stage.WriteRows(acc, rows, n, 0, output);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(sums);
        }
    }
}
