using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The fused dynamic-quantization MatMul (see <see cref="Planning.DynamicQuantizedMatMulFusion"/>): inputs
/// a (float), Wq (int8/uint8, constant), Wzp (constant), Ws (constant), optional bias; output float.
/// The weight is packed once at load.
/// </summary>
[OnnxOperator("DynamicQuantizeMatMul", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class DynamicQuantizeMatMul(PackedInt8Matrix weights, float[] scales, float[] bias) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var w = context.TakeConstantInput(1)!;
        var zeroPoints = QuantizationInputs.ZeroPoints(context.ConstantInput(2), context.Label);
        var bytes = QuantizationInputs.Bytes(w);
        var packed = PackWeights(context, bytes, w.ElementType == TensorElementType.Int8, w.Shape[0], w.Shape[1], zeroPoints.Length == 0 ? [0] : zeroPoints);
        var scales = QuantizationInputs.Scales(context.ConstantInput(3)!, context.Label);
        float[] bias = context.HasInput(4) ? QuantizationInputs.Scales(context.ConstantInput(4)!, context.Label) : [];
        return new DynamicQuantizeMatMul(packed, scales, bias);
    }

    /// <summary>
    /// Packs 8-bit weights for the int8 GEMM. <c>activation_bits = 7</c> on the node (set where the runtime, not the model,
    /// chooses how activations are quantized: TensorFlow's weight-only Dequantize) packs for 7-bit activations.
    /// </summary>
    internal static PackedInt8Matrix PackWeights(OperatorBuildContext context, ReadOnlySpan<byte> bytes, bool signed, int depth, int columns, int[] zeroPoints)
    {
        if (context.Int("activation_bits", 8) == 7) return PackedInt8Matrix.PackForSevenBitActivations(bytes, depth, columns, zeroPoints, signed);
        return signed
            ? PackedInt8Matrix.Pack(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(bytes), depth, columns, zeroPoints)
            : PackedInt8Matrix.Pack(bytes, depth, columns, zeroPoints);
    }

    public override void Run(OperatorCall call)
    {
        var a = call.Input(0);
        if (a.ElementType != TensorElementType.Float32)
            throw new NotSupportedException($"{call.Context.Node}: {a.ElementType.DisplayName()} activations are not supported.");
        if (a.Rank == 0 || a.Shape[^1] != weights.Depth)
            throw new InvalidOperationException($"{call.Context.Node}: A's last dimension must be {weights.Depth}, not {Tensor.Format(a.Shape)}.");
        var shape = a.ShapeArray.ToArray();
        shape[^1] = weights.Columns;
        var output = call.Output(0, TensorElementType.Float32, shape);
        Int8Gemm.MultiplyDynamic(a.AsSpan<float>(), a.Length / weights.Depth, weights, scales, bias, output.AsSpan<float>(), call.Context.DegreeOfParallelism);
    }
}
