using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// ArgMax along one axis (int64 indices), keepdims or not; ties go to the first index, or the last with
/// select_last_index=1; a NaN counts as the largest value (as numpy's argmax). Every numeric type.
/// </summary>
[OnnxOperator("ArgMax", 1)]
internal sealed class ArgMax(long axis, bool keepDims, bool selectLast) : Operator
{
    public static Operator Create(OperatorBuildContext context) =>
        new ArgMax(context.Int("axis", 0), context.Int("keepdims", 1) != 0, context.Int("select_last_index", 0) != 0);

    public override void Run(OperatorCall call)
    {
        var data = call.Input(0);
        int rank = data.Rank;
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= Math.Max(rank, 1))
            throw new InvalidOperationException($"{call.Context.Node}: axis {axis} is out of range for rank {rank}.");
        if (rank == 0)
            throw new InvalidOperationException($"{call.Context.Node}: ArgMax of a scalar has no axis.");
        int ax = (int)a;
        int r = data.Shape[ax];
        int outer = 1, inner = 1;
        for (int d = 0; d < ax; d++) outer *= data.Shape[d];
        for (int d = ax + 1; d < rank; d++) inner *= data.Shape[d];
        if (r == 0 && outer * inner > 0)
            throw new InvalidOperationException($"{call.Context.Node}: ArgMax over an empty axis.");
        var shape = new List<int>();
        for (int d = 0; d < rank; d++)
        {
            if (d != ax) shape.Add(data.Shape[d]);
            else if (keepDims) shape.Add(1);
        }
        var type = data.ElementType;
        bool supported = type is TensorElementType.Float32 or TensorElementType.Float64 or TensorElementType.Float16
            or TensorElementType.Int8 or TensorElementType.UInt8 or TensorElementType.Int16 or TensorElementType.UInt16
            or TensorElementType.Int32 or TensorElementType.UInt32 or TensorElementType.Int64 or TensorElementType.UInt64;
        if (!supported) throw new NotSupportedException($"{call.Context.Node}: ArgMax of {type.DisplayName()} is not supported.");
        var indices = call.Output(0, TensorElementType.Int64, shape.ToArray()).AsSpan<long>();
        switch (type)
        {
            case TensorElementType.Float32: Find(data.AsSpan<float>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.Float64: Find(data.AsSpan<double>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.Float16: Find(data.AsSpan<Half>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.Int8: Find(data.AsSpan<sbyte>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.UInt8: Find(data.AsSpan<byte>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.Int16: Find(data.AsSpan<short>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.UInt16: Find(data.AsSpan<ushort>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.Int32: Find(data.AsSpan<int>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.UInt32: Find(data.AsSpan<uint>(), outer, r, inner, indices, selectLast); break;
            case TensorElementType.Int64: Find(data.AsSpan<long>(), outer, r, inner, indices, selectLast); break;
            default: Find(data.AsSpan<ulong>(), outer, r, inner, indices, selectLast); break;
        }
    }

    /// <summary>indices[o, i] = the k maximizing x[o, k, i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Find<T>(ReadOnlySpan<T> x, int outer, int r, int inner, Span<long> indices, bool selectLast)
        where T : unmanaged, INumber<T>
    {
        if (inner == 1)
        {
            for (int o = 0; o < outer; o++) indices[o] = Row(x.Slice(o * r, r), selectLast);
            return;
        }
        var best = ArrayPool<T>.Shared.Rent(inner);
        try
        {
            for (int o = 0; o < outer; o++)
            {
                var block = x.Slice(o * r * inner, r * inner);
                var index = indices.Slice(o * inner, inner);
                block[..inner].CopyTo(best);
                index.Clear();
                for (int k = 1; k < r; k++)
                {
                    var row = block.Slice(k * inner, inner);
                    for (int i = 0; i < inner; i++)
                    {
                        if (Better(row[i], best[i], selectLast))
                        {
                            best[i] = row[i];
                            index[i] = k;
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(best);
        }
    }

    /// <summary>The index of the maximum of one contiguous row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static long Row<T>(ReadOnlySpan<T> row, bool selectLast) where T : INumber<T>
    {
        T best = row[0];
        int index = 0;
        for (int k = 1; k < row.Length; k++)
        {
            if (Better(row[k], best, selectLast))
            {
                best = row[k];
                index = k;
            }
        }
        return index;
    }

    /// <summary>Whether <paramref name="v"/>, met after <paramref name="best"/>, takes its place (NaN is the largest; the first NaN stays unless the last is wanted).</summary>
    private static bool Better<T>(T v, T best, bool selectLast) where T : INumber<T> =>
        selectLast ? v > best || v == best || T.IsNaN(v) : !T.IsNaN(best) && (v > best || T.IsNaN(v));
}
