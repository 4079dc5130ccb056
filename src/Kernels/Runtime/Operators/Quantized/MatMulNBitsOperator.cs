using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// com.microsoft MatMulNBits with 4-bit weights: <c>Y = A x dequant(B)^T (+ bias)</c>, B packed as ONNX Runtime
/// lays it out (blocks along K, float scales, optional packed or float zero points). accuracy_level 4 quantizes A
/// to int8 per block (<see cref="Int4GemmInt8Activations"/>); other levels keep A in float (<see cref="Int4Gemm"/>).
/// </summary>
[OnnxOperator("MatMulNBits", 1, "com.microsoft")]
internal sealed class MatMulNBitsOperator(PackedInt4Matrix weights, float[]? bias, bool int8Activations) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        int k = (int)context.Int("K", 0), n = (int)context.Int("N", 0);
        int bits = (int)context.Int("bits", 4), blockSize = (int)context.Int("block_size", 0);
        if (bits != 4) throw context.Unsupported($"MatMulNBits with {bits}-bit weights (4 only)");
        if (context.HasInput(4)) throw context.Unsupported("MatMulNBits with g_idx (act-order)");
        var b = context.TakeConstantInput(1) ?? throw context.Unsupported("MatMulNBits whose weights are not constant");
        var scales = context.ConstantInput(2) ?? throw context.Unsupported("MatMulNBits whose scales are not constant");
        var zeroPoints = context.HasInput(3) ? context.ConstantInput(3) ?? throw context.Unsupported("MatMulNBits whose zero points are not constant") : null;
        var biasTensor = context.HasInput(5) ? context.ConstantInput(5) ?? throw context.Unsupported("MatMulNBits whose bias is not constant") : null;
        if (b.ElementType != TensorElementType.UInt8) throw context.Unsupported($"MatMulNBits with {b.ElementType.DisplayName()} weights");

        var scaleValues = QuantizationInputs.Scales(scales, context.Label);
        PackedInt4Matrix packed;
        try
        {
            packed = zeroPoints switch
            {
                null => PackedInt4Matrix.FromMatMulNBits(b.AsSpan<byte>(), k, n, blockSize, scaleValues),
                { ElementType: TensorElementType.UInt8 } z => PackedInt4Matrix.FromMatMulNBits(b.AsSpan<byte>(), k, n, blockSize, scaleValues, z.AsSpan<byte>()),
                var z => PackedInt4Matrix.FromMatMulNBits(b.AsSpan<byte>(), k, n, blockSize, scaleValues, default, QuantizationInputs.Scales(z, context.Label)),
            };
        }
        catch (ArgumentException e)
        {
            throw context.Unsupported($"its operands do not match K={k}, N={n}, block_size={blockSize}: {e.Message}");
        }
        var biasValues = biasTensor is null ? null : QuantizationInputs.Scales(biasTensor, context.Label);
        bool int8 = context.Int("accuracy_level", 0) == 4 && context.Options.UseIntegerKernels;
        return new MatMulNBitsOperator(packed, biasValues, int8);
    }

    public override void Run(OperatorCall call)
    {
        var a = call.Input(0);
        string node = call.Context.Node;
        if (a.Rank == 0 || a.Shape[^1] != weights.Depth)
            throw new InvalidOperationException($"{node}: A's last dimension must be K={weights.Depth}, not {Tensor.Format(a.Shape)}.");
        int rows = a.Length / weights.Depth;
        var shape = a.ShapeArray.ToArray();
        shape[^1] = weights.Columns;
        var input = QuantizationInputs.Floats(a, node);
        var result = new float[rows * weights.Columns];
        if (int8Activations) Int4GemmInt8Activations.Multiply(input, rows, weights, result, bias, call.Context.DegreeOfParallelism);
        else Int4Gemm.Multiply(input, rows, weights, result, bias, call.Context.DegreeOfParallelism);
        if (a.ElementType == TensorElementType.Float16)
        {
            var output = call.Output(0, TensorElementType.Float16, shape).AsSpan<Half>();
            for (int i = 0; i < result.Length; i++) output[i] = (Half)result[i];
        }
        else
        {
            result.CopyTo(call.Output(0, TensorElementType.Float32, shape).AsSpan<float>());
        }
    }
}
