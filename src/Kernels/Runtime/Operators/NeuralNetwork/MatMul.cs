using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// MatMul with numpy semantics: 1-D operands promoted and the added axis removed, batch axes broadcast.
/// float32 runs on <see cref="FloatGemm"/>; a constant 2-D B is packed once at load.
/// </summary>
[OnnxOperator("MatMul", 1)]
[OnnxOperator("MatMulAdd", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class MatMul(PackedFloatMatrix? packedB, float[]? bias) : Operator
{
    /// <summary>MatMul, or the fused MatMulAdd (A, constant 2-D B, constant bias [N]) that <see cref="Planning.MatMulAddFusion"/> makes.</summary>
    public static Operator Create(OperatorBuildContext context)
    {
        var b = context.ConstantInput(1);
        if (b is not { ElementType: TensorElementType.Float32, Rank: 2 }) return new MatMul(null, null);
        b = context.TakeConstantInput(1)!;
        float[]? bias = context.Node.OpType == "MatMulAdd" ? context.TakeConstantInput(2)!.ToArray<float>() : null;
        return new MatMul(PackedFloatMatrix.Pack(b.AsSpan<float>(), b.Shape[0], b.Shape[1]), bias);
    }

    public override void Run(OperatorCall call)
    {
        var a = call.Input(0);
        if (packedB is not null)
        {
            // B was taken at load: only float32 A meets it.
            var packedPlan = MatMulShape.Plan(a.Shape, [packedB.Depth, packedB.Columns], call.Context.Node);
            if (a.ElementType == TensorElementType.Float16)
            {
                FloatWidening.Any(call, (c, _) => Run(c));
                return;
            }
            var result = call.Output(0, TensorElementType.Float32, packedPlan.OutputShape);
            RunFloat(a.AsSpan<float>(), default, result.AsSpan<float>(), packedPlan, call.Context.DegreeOfParallelism);
            return;
        }
        var b = call.Input(1);
        var plan = MatMulShape.Plan(a.Shape, b.Shape, call.Context.Node);
        switch (a.ElementType)
        {
            case TensorElementType.Float32:
            {
                var output = call.Output(0, a.ElementType, plan.OutputShape);
                RunBatches((float[])a.Buffer.Data, (float[])b.Buffer.Data, (float[])output.Buffer.Data, plan, call.Context.DegreeOfParallelism);
                break;
            }
            case TensorElementType.Float16:
                FloatWidening.Any(call, (c, _) => Run(c));
                break;
            case TensorElementType.Float64:
                Naive<double>(a.AsSpan<double>(), b.AsSpan<double>(), call.Output(0, a.ElementType, plan.OutputShape).AsSpan<double>(), plan);
                break;
            case TensorElementType.Int32:
                Naive<int>(a.AsSpan<int>(), b.AsSpan<int>(), call.Output(0, a.ElementType, plan.OutputShape).AsSpan<int>(), plan);
                break;
            case TensorElementType.Int64:
                Naive<long>(a.AsSpan<long>(), b.AsSpan<long>(), call.Output(0, a.ElementType, plan.OutputShape).AsSpan<long>(), plan);
                break;
            case TensorElementType.UInt32:
                Naive<uint>(a.AsSpan<uint>(), b.AsSpan<uint>(), call.Output(0, a.ElementType, plan.OutputShape).AsSpan<uint>(), plan);
                break;
            case TensorElementType.UInt64:
                Naive<ulong>(a.AsSpan<ulong>(), b.AsSpan<ulong>(), call.Output(0, a.ElementType, plan.OutputShape).AsSpan<ulong>(), plan);
                break;
            default:
                throw new NotSupportedException($"{call.Context.Node}: MatMul of {a.ElementType.DisplayName()} is not supported.");
        }
    }

    private void RunFloat(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, MatMulShape plan, int threads)
    {
        int m = plan.M, k = plan.K, n = plan.N;
        if (packedB is not null && plan.BBatchStride == 0)
        {
            // One B for every batch: the batches of A are just more rows.
            if (plan.ABatchesContiguous && plan.Batches > 1)
            {
                FloatGemm.Multiply(a[..(plan.Batches * m * k)], plan.Batches * m, packedB, c, bias, threads);
                return;
            }
            for (int batch = 0; batch < plan.Batches; batch++)
                FloatGemm.Multiply(a.Slice(plan.AOffset(batch), m * k), m, packedB, c.Slice(batch * m * n, m * n), bias, threads);
            return;
        }
        Batches(a, b, c, plan, 0, plan.Batches, threads);
    }

    /// <summary>Batches <c>[first, end)</c> of a product whose B varies by batch: each B packed, then one GEMM.</summary>
    private static void Batches(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, MatMulShape plan, int first, int end, int threads)
    {
        int m = plan.M, k = plan.K, n = plan.N;
        for (int batch = first; batch < end; batch++)
        {
            var packed = PackedFloatMatrix.Pack(b.Slice(plan.BOffset(batch), k * n), k, n);
            FloatGemm.Multiply(a.Slice(plan.AOffset(batch), m * k), m, packed, c.Slice(batch * m * n, m * n), default, threads);
        }
    }

    /// <summary>
    /// Both operands at run time (attention's Q x K^T and P x V): many small products, so with several threads each
    /// thread takes whole batches (one GEMM splits poorly at these sizes). Each product is the same whichever thread runs it.
    /// </summary>
    private void RunBatches(float[] a, float[] b, float[] c, MatMulShape plan, int threads)
    {
        if (threads <= 1 || plan.Batches < 2)
        {
            RunFloat(a, b, c, plan, threads);
            return;
        }
        ParallelRanges.For(plan.Batches, (long)plan.M * plan.N * Math.Max(1, plan.K) / 8, threads, (first, end) => Batches(a, b, c, plan, first, end, 1));
    }

    private static void Naive<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, MatMulShape plan) where T : System.Numerics.INumber<T>
    {
        int m = plan.M, k = plan.K, n = plan.N;
        for (int batch = 0; batch < plan.Batches; batch++)
        {
            var x = a.Slice(plan.AOffset(batch), m * k);
            var y = b.Slice(plan.BOffset(batch), k * n);
            var z = c.Slice(batch * m * n, m * n);
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    T sum = T.Zero;
                    for (int t = 0; t < k; t++) sum += x[i * k + t] * y[t * n + j];
                    z[i * n + j] = sum;
                }
            }
        }
    }
}

/// <summary>How a numpy-style MatMul splits into batches of M x K by K x N products.</summary>
internal sealed class MatMulShape
{
    public int M, K, N, Batches;
    public int[] OutputShape = [];
    public int BBatchStride;

    /// <summary>True when A has every batch axis itself (none broadcast), so its batches follow each other in memory.</summary>
    public bool ABatchesContiguous;
    private int[] _batchShape = [], _aBatchStrides = [], _bBatchStrides = [];

    public int AOffset(int batch) => Offset(batch, _aBatchStrides);

    public int BOffset(int batch) => Offset(batch, _bBatchStrides);

    private int Offset(int batch, int[] strides)
    {
        int offset = 0;
        for (int d = _batchShape.Length - 1; d >= 0; d--)
        {
            offset += batch % _batchShape[d] * strides[d];
            batch /= _batchShape[d];
        }
        return offset;
    }

    public static MatMulShape Plan(ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape, string node)
    {
        int[] a = aShape.Length == 1 ? [1, aShape[0]] : aShape.ToArray();
        int[] b = bShape.Length == 1 ? [bShape[0], 1] : bShape.ToArray();
        if (a.Length < 2 || b.Length < 2) throw new InvalidOperationException($"{node}: MatMul needs operands of rank 1 or more.");
        int m = a[^2], k = a[^1], n = b[^1];
        if (b[^2] != k) throw new InvalidOperationException($"{node}: MatMul of {Tensor.Format(aShape)} and {Tensor.Format(bShape)}: inner dimensions differ.");
        var batchShape = Broadcast.Shape(a.AsSpan(0, a.Length - 2), b.AsSpan(0, b.Length - 2), node);
        var aStrides = Broadcast.Strides(a.AsSpan(0, a.Length - 2), batchShape).Select(s => s * m * k).ToArray();
        var bStrides = Broadcast.Strides(b.AsSpan(0, b.Length - 2), batchShape).Select(s => s * k * n).ToArray();
        var output = new List<int>(batchShape);
        if (aShape.Length > 1) output.Add(m);
        if (bShape.Length > 1) output.Add(n);
        return new MatMulShape
        {
            M = m, K = k, N = n,
            Batches = Tensor.CountElements(batchShape),
            OutputShape = output.ToArray(),
            _batchShape = batchShape,
            _aBatchStrides = aStrides,
            _bBatchStrides = bStrides,
            ABatchesContiguous = a.Length - 2 == batchShape.Length && a.AsSpan(0, a.Length - 2).SequenceEqual(batchShape),
            BBatchStride = bStrides.Where((s, d) => batchShape[d] != 1).Any(s => s != 0) ? 1 : 0, // a size-1 batch axis does not make B vary
        };
    }
}
