using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The integer products shared by MatMulInteger and QLinearMatMul: a 2-D B (constant: packed once at load)
/// runs on <see cref="Int8Gemm"/> with A's batches as rows; anything else (batched B, per-row A zero points)
/// takes an exact reference loop.
/// </summary>
internal sealed class IntegerProduct
{
    private readonly PackedInt8Matrix? _packed;

    public IntegerProduct(Tensor? constantB, Tensor? constantZeroPointB, string node)
    {
        if (constantB is { Rank: 2 } b && (constantZeroPointB is null || constantZeroPointB.Rank <= 1))
            _packed = Pack(b, QuantizationInputs.ZeroPoints(constantZeroPointB, node));
    }

    /// <summary>C (int32) = (A - zpA) x (B - zpB) with numpy batching; returns the output shape.</summary>
    public int[] Multiply(OperatorCall call, Tensor a, Tensor b, Tensor? zeroPointA, Tensor? zeroPointB, out int[] accumulators)
    {
        string node = call.Context.Node;
        var plan = MatMulShape.Plan(a.Shape, b.Shape, node);
        var za = QuantizationInputs.ZeroPoints(zeroPointA, node);
        var zb = QuantizationInputs.ZeroPoints(zeroPointB, node);
        accumulators = new int[Tensor.CountElements(plan.OutputShape)];
        bool signedA = a.ElementType == TensorElementType.Int8;
        if (a.ElementType is not (TensorElementType.Int8 or TensorElementType.UInt8) || b.ElementType is not (TensorElementType.Int8 or TensorElementType.UInt8))
            throw new NotSupportedException($"{node}: integer MatMul of {a.ElementType.DisplayName()} by {b.ElementType.DisplayName()} is not supported.");

        if (b.Rank == 2 && za.Length <= 1 && (zb.Length <= 1 || zb.Length == plan.N) && plan.ABatchesContiguous)
        {
            var packed = _packed ?? Pack(b, zb);
            int rows = plan.Batches * plan.M;
            Int8Gemm.MultiplyInt32(QuantizationInputs.Bytes(a), rows, za.Length == 0 ? 0 : za[0], signedA, packed, accumulators, call.Context.DegreeOfParallelism);
            return plan.OutputShape;
        }

        // Reference path: per-row A zero points, batched B.
        var x = QuantizationInputs.Bytes(a);
        var y = QuantizationInputs.Bytes(b);
        bool signedB = b.ElementType == TensorElementType.Int8;
        int m = plan.M, k = plan.K, n = plan.N;
        for (int batch = 0; batch < plan.Batches; batch++)
        {
            int ao = plan.AOffset(batch), bo = plan.BOffset(batch);
            for (int i = 0; i < m; i++)
            {
                int zai = za.Length == 0 ? 0 : za.Length == 1 ? za[0] : za[i];
                for (int j = 0; j < n; j++)
                {
                    int zbj = zb.Length == 0 ? 0 : zb.Length == 1 ? zb[0] : zb[j];
                    int sum = 0;
                    for (int t = 0; t < k; t++)
                    {
                        int av = signedA ? (sbyte)x[ao + i * k + t] : x[ao + i * k + t];
                        int bv = signedB ? (sbyte)y[bo + t * n + j] : y[bo + t * n + j];
                        sum += (av - zai) * (bv - zbj);
                    }
                    accumulators[(batch * m + i) * n + j] = sum;
                }
            }
        }
        return plan.OutputShape;
    }

    private static PackedInt8Matrix Pack(Tensor b, int[] zeroPoints)
    {
        var bytes = QuantizationInputs.Bytes(b);
        int[] zps = zeroPoints.Length == 0 ? [0] : zeroPoints;
        return b.ElementType == TensorElementType.Int8
            ? PackedInt8Matrix.Pack(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(bytes), b.Shape[0], b.Shape[1], zps)
            : PackedInt8Matrix.Pack(bytes, b.Shape[0], b.Shape[1], zps);
    }
}

/// <summary>MatMulInteger: int32 = (A - a_zero_point) x (B - b_zero_point), exact, with numpy batching.</summary>
[OnnxOperator("MatMulInteger", 10)]
internal sealed class MatMulIntegerOperator(IntegerProduct product) : Operator
{
    public static Operator Create(OperatorBuildContext context) =>
        new MatMulIntegerOperator(new IntegerProduct(context.ConstantInput(1), context.ConstantInput(3), context.Label));

    public override void Run(OperatorCall call)
    {
        var shape = product.Multiply(call, call.Input(0), call.Input(1), call.OptionalInput(2), call.OptionalInput(3), out var accumulators);
        accumulators.CopyTo(call.Output(0, TensorElementType.Int32, shape).AsSpan<int>());
    }
}

/// <summary>
/// QLinearMatMul: the exact integer product, then ONNX's requantization: <c>rint(C x (sa x sb / sy) + zy)</c>
/// saturated to the output type, with the scale product in float32 and the rest in float64, as the reference.
/// </summary>
[OnnxOperator("QLinearMatMul", 10)]
internal sealed class QLinearMatMulOperator(IntegerProduct product) : Operator
{
    public static Operator Create(OperatorBuildContext context) =>
        new QLinearMatMulOperator(new IntegerProduct(context.ConstantInput(3), context.ConstantInput(5), context.Label));

    public override void Run(OperatorCall call)
    {
        string node = call.Context.Node;
        var a = call.Input(0);
        var zeroPointY = call.OptionalInput(7);
        var outputType = zeroPointY?.ElementType ?? a.ElementType;
        var shape = product.Multiply(call, a, call.Input(3), call.OptionalInput(2), call.OptionalInput(5), out var accumulators);
        float sa = QuantizationInputs.Scales(call.Input(1), node)[0];
        float[] sb = QuantizationInputs.Scales(call.Input(4), node);
        float sy = QuantizationInputs.Scales(call.Input(6), node)[0];
        int zy = QuantizationInputs.ZeroPoints(zeroPointY, node) is [var z, ..] ? z : 0;
        int n = shape.Length == 0 ? 1 : shape[^1];
        var scales = new double[sb.Length];
        for (int j = 0; j < sb.Length; j++) scales[j] = sa * sb[j] / sy; // float32 arithmetic, then widened
        var (min, max) = outputType == TensorElementType.Int8 ? (-128, 127) : (0, 255);
        var output = QuantizationInputs.Bytes(call.Output(0, outputType, shape));
        for (int i = 0; i < accumulators.Length; i++)
        {
            double value = Math.Round(accumulators[i] * scales[sb.Length == 1 ? 0 : i % n] + zy, MidpointRounding.ToEven);
            output[i] = (byte)(int)Math.Clamp(value, min, max);
        }
    }
}
