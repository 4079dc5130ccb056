using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Gemm: <c>Y = alpha * A' x B' + beta * C</c>, A' and B' optionally transposed, C broadcast to M x N.
/// float32 runs on <see cref="FloatGemm"/>; a constant B is packed once at load with alpha folded in, and a
/// constant row-vector C becomes the GEMM's fused bias.
/// </summary>
[OnnxOperator("Gemm", 1)]
internal sealed class Gemm(float alpha, float beta, bool transA, bool transB, PackedFloatMatrix? packedB, float[]? fusedBias) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        float alpha = context.Float("alpha", 1f), beta = context.Float("beta", 1f);
        bool transA = context.Int("transA", 0) != 0, transB = context.Int("transB", 0) != 0;
        PackedFloatMatrix? packed = null;
        float[]? bias = null;
        if (context.ConstantInput(1) is { ElementType: TensorElementType.Float32, Rank: 2 } b)
        {
            int k = transB ? b.Shape[1] : b.Shape[0], n = transB ? b.Shape[0] : b.Shape[1];
            ReadOnlySpan<float> values = b.AsSpan<float>();
            if (alpha != 1f)
            {
                var scaled = new float[values.Length];
                TensorPrimitives.Multiply(values, alpha, scaled);
                values = scaled;
            }
            packed = PackedFloatMatrix.Pack(values, k, n, transB);
            if (context.ConstantInput(2) is { ElementType: TensorElementType.Float32 } c && RowVector(c, n))
            {
                var cs = c.AsSpan<float>();
                bias = new float[n];
                for (int j = 0; j < n; j++) bias[j] = beta * cs[cs.Length == 1 ? 0 : j];
            }
        }
        return new Gemm(alpha, beta, transA, transB, packed, bias);
    }

    /// <summary>True when C is the same for every row: a scalar, [N] or [1, N].</summary>
    private static bool RowVector(Tensor c, int n) =>
        c.Length == 1 || (c.Rank == 1 && c.Shape[0] == n) || (c.Rank == 2 && c.Shape[0] == 1 && c.Shape[1] == n);

    public override void Run(OperatorCall call)
    {
        var a = call.Input(0);
        var b = call.Input(1);
        if (a.Rank != 2 || b.Rank != 2)
            throw new InvalidOperationException($"{call.Context.Node}: Gemm needs 2-D A and B, not {Tensor.Format(a.Shape)} and {Tensor.Format(b.Shape)}.");
        int m = transA ? a.Shape[1] : a.Shape[0], k = transA ? a.Shape[0] : a.Shape[1];
        int kb = transB ? b.Shape[1] : b.Shape[0], n = transB ? b.Shape[0] : b.Shape[1];
        if (k != kb)
            throw new InvalidOperationException($"{call.Context.Node}: Gemm of {Tensor.Format(a.Shape)} and {Tensor.Format(b.Shape)} (transA {transA}, transB {transB}): inner dimensions differ.");
        switch (a.ElementType)
        {
            case TensorElementType.Float32: RunFloat(call, a, b, m, k, n); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            case TensorElementType.Float64: Naive<double>(call, a, b, m, k, n); break;
            case TensorElementType.Int32: Naive<int>(call, a, b, m, k, n); break;
            case TensorElementType.Int64: Naive<long>(call, a, b, m, k, n); break;
            case TensorElementType.UInt32: Naive<uint>(call, a, b, m, k, n); break;
            case TensorElementType.UInt64: Naive<ulong>(call, a, b, m, k, n); break;
            default: throw new NotSupportedException($"{call.Context.Node}: Gemm of {a.ElementType.DisplayName()} is not supported.");
        }
    }

    private void RunFloat(OperatorCall call, Tensor a, Tensor b, int m, int k, int n)
    {
        var y = call.Output(0, TensorElementType.Float32, [m, n]).AsSpan<float>();
        float[]? transposed = transA ? Transpose(a.AsSpan<float>(), k, m) : null;
        ReadOnlySpan<float> left = transposed is null ? a.AsSpan<float>() : transposed.AsSpan(0, m * k);
        var c = call.OptionalInput(2);
        try
        {
            if (packedB is not null)
            {
                FloatGemm.Multiply(left, m, packedB, y, fusedBias, call.Context.DegreeOfParallelism);
                if (fusedBias is null) AddC(y, c, m, n, call.Context.Node);
                return;
            }
            FloatGemm.Multiply(left, m, PackedFloatMatrix.Pack(b.AsSpan<float>(), k, n, transB), y, default, call.Context.DegreeOfParallelism);
            if (alpha != 1f) TensorPrimitives.Multiply(y, alpha, y);
            AddC(y, c, m, n, call.Context.Node);
        }
        finally
        {
            if (transposed is not null) System.Buffers.ArrayPool<float>.Shared.Return(transposed);
        }
    }

    private void AddC(Span<float> y, Tensor? c, int m, int n, string node)
    {
        if (c is null || beta == 0f) return;
        var strides = CStrides(c, m, n, node);
        var cs = c.AsSpan<float>();
        for (int i = 0; i < m; i++)
        {
            var row = y.Slice(i * n, n);
            if (strides[1] == 1)
                TensorPrimitives.MultiplyAdd(cs.Slice(i * strides[0], n), beta, row, row);
            else
                TensorPrimitives.Add(row, beta * cs[i * strides[0]], row);
        }
    }

    /// <summary>C's element strides seen as M x N (unidirectional broadcast).</summary>
    private static int[] CStrides(Tensor c, int m, int n, string node)
    {
        if (c.Rank > 2 || (c.Rank >= 1 && c.Shape[^1] != 1 && c.Shape[^1] != n) || (c.Rank == 2 && c.Shape[0] != 1 && c.Shape[0] != m))
            throw new InvalidOperationException($"{node}: C of shape {Tensor.Format(c.Shape)} does not broadcast to [{m}, {n}].");
        return Broadcast.Strides(c.Shape, [m, n]);
    }

    private static float[] Transpose(ReadOnlySpan<float> source, int rows, int columns)
    {
        var target = System.Buffers.ArrayPool<float>.Shared.Rent(rows * columns);
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < columns; j++) target[j * rows + r] = source[r * columns + j];
        }
        return target;
    }

    private void Naive<T>(OperatorCall call, Tensor a, Tensor b, int m, int k, int n) where T : unmanaged, INumber<T>
    {
        var x = a.AsSpan<T>();
        var w = b.AsSpan<T>();
        var y = call.Output(0, a.ElementType, [m, n]).AsSpan<T>();
        var c = call.OptionalInput(2);
        int[]? strides = c is null ? null : CStrides(c, m, n, call.Context.Node);
        var cs = c is null ? default : c.AsSpan<T>();
        int aRow = transA ? 1 : k, aStep = transA ? m : 1;
        int bStep = transB ? 1 : n, bColumn = transB ? k : 1;
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                T sum = T.Zero;
                for (int t = 0; t < k; t++) sum += x[i * aRow + t * aStep] * w[t * bStep + j * bColumn];
                if (alpha != 1f) sum = T.CreateTruncating(double.CreateTruncating(sum) * alpha);
                if (strides is not null && beta != 0f)
                {
                    T term = cs[i * strides[0] + j * strides[1]];
                    sum += beta == 1f ? term : T.CreateTruncating(double.CreateTruncating(term) * beta);
                }
                y[i * n + j] = sum;
            }
        }
    }
}
