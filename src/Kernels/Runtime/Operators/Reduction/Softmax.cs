using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Softmax and LogSoftmax, max-subtracted so large inputs do not overflow. Before opset 13 the input is
/// coerced to 2-D at <c>axis</c> (default 1) and each row of the flattened trailing axes is normalized; from
/// 13 the normalization runs along the single axis <c>axis</c> (default -1). float32/64, float16 through float32.
/// </summary>
[OnnxOperator("Softmax", 1)]
[OnnxOperator("Softmax", 13)]
[OnnxOperator("LogSoftmax", 1)]
[OnnxOperator("LogSoftmax", 13)]
internal sealed class Softmax(bool log, long axis, bool coerceTo2D) : Operator
{
    // Below this many elements, splitting over threads costs more than it saves.
    private const int ParallelThreshold = 1 << 15;

    public static Operator Create(OperatorBuildContext context)
    {
        bool coerce = context.Opset < 13;
        return new Softmax(context.Node.OpType == "LogSoftmax", context.Int("axis", coerce ? 1 : -1), coerce);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        if (x.ElementType == TensorElementType.Float16)
        {
            FloatWidening.Any(call, (c, _) => Run(c));
            return;
        }
        int rank = x.Rank;
        long a = axis < 0 ? axis + rank : axis;
        // A scalar is a single row; the 2-D coercion also accepts axis == rank (rows of one element).
        if (rank > 0 && (a < 0 || a > rank || (a == rank && !coerceTo2D)))
            throw new InvalidOperationException($"{call.Context.Node}: axis {axis} is out of range for rank {rank}.");
        int outer = 1, n = 1, inner = 1;
        for (int d = 0; d < rank; d++)
        {
            if (d < a) outer *= x.Shape[d];
            else if (d == a || coerceTo2D) n *= x.Shape[d];
            else inner *= x.Shape[d];
        }
        switch (x.ElementType)
        {
            case TensorElementType.Float32:
                Rows((float[])x.Buffer.Data, (float[])call.Output(0, x.ElementType, x.ShapeArray).Buffer.Data, outer, n, inner, log, call.Context.DegreeOfParallelism);
                break;
            case TensorElementType.Float64:
                Rows((double[])x.Buffer.Data, (double[])call.Output(0, x.ElementType, x.ShapeArray).Buffer.Data, outer, n, inner, log, call.Context.DegreeOfParallelism);
                break;
            default:
                throw new NotSupportedException($"{call.Context.Node}: {(log ? "LogSoftmax" : "Softmax")} of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    /// <summary>Normalizes x[o, :, i] for every o and i; blocks of o split over threads (each block's result is the same either way).</summary>
    internal static void Rows<T>(T[] x, T[] d, int outer, int n, int inner, bool log, int threads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (outer == 0 || n == 0 || inner == 0) return;
        long total = (long)outer * n * inner;
        int chunks = threads > 1 && total >= ParallelThreshold ? Math.Min(threads, outer) : 1;
        if (chunks <= 1)
        {
            Block(x, d, 0, outer, n, inner, log);
            return;
        }
        IntraOpThreads.For(chunks, chunks, c =>
        {
            int start = (int)((long)outer * c / chunks), end = (int)((long)outer * (c + 1) / chunks);
            Block(x, d, start, end, n, inner, log);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block<T>(T[] xs, T[] ds, int start, int end, int n, int inner, bool log)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (inner == 1)
        {
            if (typeof(T) == typeof(float) && !log)
            {
                var xf = (float[])(object)xs;
                var df = (float[])(object)ds;
                for (int o = start; o < end; o++) ExpNormalize(xf.AsSpan(o * n, n), df.AsSpan(o * n, n));
                return;
            }
            for (int o = start; o < end; o++)
            {
                var x = xs.AsSpan(o * n, n);
                var d = ds.AsSpan(o * n, n);
                T max = TensorPrimitives.Max<T>(x);
                TensorPrimitives.Subtract(x, max, d);
                TensorPrimitives.Exp<T>(d, d);
                T sum = TensorPrimitives.Sum<T>(d);
                if (log)
                {
                    TensorPrimitives.Subtract(x, max, d);
                    TensorPrimitives.Subtract(d, T.Log(sum), d);
                }
                else
                {
                    TensorPrimitives.Divide(d, sum, d);
                }
            }
            return;
        }

        // Normalizing along a non-trailing axis: whole inner rows at a time, so every call stays vectorized.
        var maxima = ArrayPool<T>.Shared.Rent(inner);
        var sums = ArrayPool<T>.Shared.Rent(inner);
        try
        {
            var max = maxima.AsSpan(0, inner);
            var sum = sums.AsSpan(0, inner);
            for (int o = start; o < end; o++)
            {
                var x = xs.AsSpan(o * n * inner, n * inner);
                var d = ds.AsSpan(o * n * inner, n * inner);
                x[..inner].CopyTo(max);
                for (int k = 1; k < n; k++) TensorPrimitives.Max(max, x.Slice(k * inner, inner), max);
                sum.Clear();
                for (int k = 0; k < n; k++)
                {
                    var row = d.Slice(k * inner, inner);
                    TensorPrimitives.Subtract(x.Slice(k * inner, inner), max, row);
                    TensorPrimitives.Exp<T>(row, row);
                    TensorPrimitives.Add(sum, row, sum);
                }
                if (log)
                {
                    TensorPrimitives.Log<T>(sum, sum);
                    for (int k = 0; k < n; k++)
                    {
                        var row = d.Slice(k * inner, inner);
                        TensorPrimitives.Subtract(x.Slice(k * inner, inner), max, row);
                        TensorPrimitives.Subtract(row, sum, row);
                    }
                }
                else
                {
                    for (int k = 0; k < n; k++) TensorPrimitives.Divide(d.Slice(k * inner, inner), sum, d.Slice(k * inner, inner));
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(maxima);
            ArrayPool<T>.Shared.Return(sums);
        }
    }

    /// <summary>
    /// One float32 softmax row in three passes (max; exp and sum; divide), exp by <see cref="FastExp"/>. The sum is
    /// accumulated in one vector then added up, the same order for a row wherever it runs, so results do not depend on threads.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ExpNormalize(ReadOnlySpan<float> x, Span<float> d) => ExpNormalize(x, d, TensorPrimitives.Max(x));

    /// <summary><see cref="ExpNormalize(ReadOnlySpan{float}, Span{float})"/> with the row's maximum already known.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ExpNormalize(ReadOnlySpan<float> x, Span<float> d, float max)
    {
        int n = x.Length, i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var shift = Vector256.Create(max);
            var total = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var e = FastExp.NonPositive(Vector256.Create(x.Slice(i, Vector256<float>.Count)) - shift);
                e.CopyTo(d.Slice(i, Vector256<float>.Count));
                total += e;
            }
            sum = Vector256.Sum(total);
        }
        for (; i < n; i++)
        {
            d[i] = FastExp.NonPositive(x[i] - max);
            sum += d[i];
        }
        TensorPrimitives.Divide(d[..n], sum, d[..n]);
    }
}
