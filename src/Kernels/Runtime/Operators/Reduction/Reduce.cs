using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// ReduceSum, ReduceMean, ReduceMax, ReduceMin over a set of axes, keepdims or not. The axes are an attribute
/// before opset 13 (ReduceSum) or 18 (the others) and an optional int64 input from then on, where
/// noop_with_empty_axes=1 makes empty axes an identity. Reducing an empty set gives the operation's identity
/// (0, -inf or the type's minimum, +inf or the type's maximum). float32/64, float16 through float32, the
/// integer types, and bool for Max/Min.
/// </summary>
[OnnxOperator("ReduceSum", 1)]
[OnnxOperator("ReduceSum", 13)]
[OnnxOperator("ReduceMean", 1)]
[OnnxOperator("ReduceMean", 18)]
[OnnxOperator("ReduceMax", 1)]
[OnnxOperator("ReduceMax", 18)]
[OnnxOperator("ReduceMin", 1)]
[OnnxOperator("ReduceMin", 18)]
internal sealed class Reduce(string op, long[]? axesAttribute, bool axesFromInput, bool keepDims, bool noopWithEmptyAxes) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        string op = context.Node.OpType;
        bool fromInput = context.Opset >= (op == "ReduceSum" ? 13 : 18);
        bool noop = context.Int("noop_with_empty_axes", 0) != 0;
        if (fromInput && context.ConstantInput(1) is { } constant && constant.ElementType != TensorElementType.Int64)
            throw context.Unsupported($"axes of type {constant.ElementType.DisplayName()} (expected int64)");
        return new Reduce(op, fromInput ? null : context.Ints("axes"), fromInput, context.Int("keepdims", 1) != 0, noop);
    }

    public override void Run(OperatorCall call)
    {
        var data = call.Input(0);
        if (data.ElementType == TensorElementType.Float16)
        {
            FloatWidening.Any(call, (c, _) => Run(c));
            return;
        }
        long[] axes = axesFromInput ? call.OptionalInput(1)?.AsSpan<long>().ToArray() ?? [] : axesAttribute ?? [];
        if (axes.Length == 0 && noopWithEmptyAxes)
        {
            call.OutputView(0, data, data.ShapeArray);
            return;
        }
        var reduced = new bool[data.Rank];
        if (axes.Length == 0) Array.Fill(reduced, true);
        foreach (long axis in axes)
        {
            long a = axis < 0 ? axis + data.Rank : axis;
            if (a < 0 || a >= data.Rank)
                throw new InvalidOperationException($"{call.Context.Node}: axis {axis} is out of range for rank {data.Rank}.");
            reduced[a] = true;
        }
        var shape = new List<int>();
        long count = 1;
        for (int d = 0; d < data.Rank; d++)
        {
            if (!reduced[d]) shape.Add(data.Shape[d]);
            else
            {
                count *= data.Shape[d];
                if (keepDims) shape.Add(1);
            }
        }
        var type = data.ElementType;
        var output = call.Output(0, type, shape.ToArray());
        switch (type)
        {
            case TensorElementType.Float32: Dispatch(data.AsSpan<float>(), data.Shape, reduced, output.AsSpan<float>(), count, float.NegativeInfinity, float.PositiveInfinity, call); break;
            case TensorElementType.Float64: Dispatch(data.AsSpan<double>(), data.Shape, reduced, output.AsSpan<double>(), count, double.NegativeInfinity, double.PositiveInfinity, call); break;
            case TensorElementType.Int32: Dispatch(data.AsSpan<int>(), data.Shape, reduced, output.AsSpan<int>(), count, int.MinValue, int.MaxValue, call); break;
            case TensorElementType.Int64: Dispatch(data.AsSpan<long>(), data.Shape, reduced, output.AsSpan<long>(), count, long.MinValue, long.MaxValue, call); break;
            case TensorElementType.Int8: Dispatch(data.AsSpan<sbyte>(), data.Shape, reduced, output.AsSpan<sbyte>(), count, sbyte.MinValue, sbyte.MaxValue, call); break;
            case TensorElementType.UInt8: Dispatch(data.AsSpan<byte>(), data.Shape, reduced, output.AsSpan<byte>(), count, byte.MinValue, byte.MaxValue, call); break;
            case TensorElementType.Int16: Dispatch(data.AsSpan<short>(), data.Shape, reduced, output.AsSpan<short>(), count, short.MinValue, short.MaxValue, call); break;
            case TensorElementType.UInt16: Dispatch(data.AsSpan<ushort>(), data.Shape, reduced, output.AsSpan<ushort>(), count, ushort.MinValue, ushort.MaxValue, call); break;
            case TensorElementType.UInt32: Dispatch(data.AsSpan<uint>(), data.Shape, reduced, output.AsSpan<uint>(), count, uint.MinValue, uint.MaxValue, call); break;
            case TensorElementType.UInt64: Dispatch(data.AsSpan<ulong>(), data.Shape, reduced, output.AsSpan<ulong>(), count, ulong.MinValue, ulong.MaxValue, call); break;
            case TensorElementType.Bool when op is "ReduceMax" or "ReduceMin":
                // bools are bytes 0 and 1: max is any, min is all.
                Dispatch(MemoryMarshal.Cast<bool, byte>(data.AsSpan<bool>()), data.Shape, reduced, MemoryMarshal.Cast<bool, byte>(output.AsSpan<bool>()), count, (byte)0, (byte)1, call);
                break;
            default:
                throw new NotSupportedException($"{call.Context.Node}: {op} of {type.DisplayName()} is not supported.");
        }
    }

    private void Dispatch<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> shape, bool[] reduced, Span<T> d, long count, T lowest, T highest, OperatorCall call)
        where T : unmanaged, INumber<T>
    {
        switch (op)
        {
            case "ReduceSum": Reduction.Run<T, SumReduction<T>>(x, shape, reduced, d, T.Zero); break;
            case "ReduceMax": Reduction.Run<T, MaxReduction<T>>(x, shape, reduced, d, lowest); break;
            case "ReduceMin": Reduction.Run<T, MinReduction<T>>(x, shape, reduced, d, highest); break;
            case "ReduceMean":
                Reduction.Run<T, SumReduction<T>>(x, shape, reduced, d, T.Zero);
                if (count > 0) TensorPrimitives.Divide(d, T.CreateSaturating(count), d);
                else d.Fill(T.CreateSaturating(double.NaN)); // the mean of nothing: NaN for floats, 0 for integers
                break;
            default: throw new InvalidOperationException($"{call.Context.Node}: unknown reduction {op}.");
        }
    }
}

/// <summary>An associative reduction: a whole span to one value, and one span folded into an accumulator.</summary>
internal interface IReduction<T>
{
    /// <summary>The reduction of a non-empty span.</summary>
    static abstract T Reduce(ReadOnlySpan<T> x);

    /// <summary>accumulator[i] = f(accumulator[i], x[i]).</summary>
    static abstract void Accumulate(ReadOnlySpan<T> x, Span<T> accumulator);
}

internal readonly struct SumReduction<T> : IReduction<T> where T : INumber<T>
{
    public static T Reduce(ReadOnlySpan<T> x) => TensorPrimitives.Sum(x);
    public static void Accumulate(ReadOnlySpan<T> x, Span<T> accumulator) => TensorPrimitives.Add(accumulator, x, accumulator);
}

internal readonly struct MaxReduction<T> : IReduction<T> where T : INumber<T>
{
    public static T Reduce(ReadOnlySpan<T> x) => TensorPrimitives.Max(x);
    public static void Accumulate(ReadOnlySpan<T> x, Span<T> accumulator) => TensorPrimitives.Max(accumulator, x, accumulator);
}

internal readonly struct MinReduction<T> : IReduction<T> where T : INumber<T>
{
    public static T Reduce(ReadOnlySpan<T> x) => TensorPrimitives.Min(x);
    public static void Accumulate(ReadOnlySpan<T> x, Span<T> accumulator) => TensorPrimitives.Min(accumulator, x, accumulator);
}

/// <summary>
/// Reduces a dense tensor over any set of axes. Adjacent axes of the same kind merge, and each run of reduced
/// axes is one [outer, r, inner] pass (innermost first): rows reduce with one vectorized call when inner is 1,
/// otherwise whole inner rows fold into an accumulator row.
/// </summary>
internal static class Reduction
{
    public static void Run<T, TReduction>(ReadOnlySpan<T> x, ReadOnlySpan<int> shape, bool[] reduced, Span<T> d, T identity)
        where T : unmanaged
        where TReduction : IReduction<T>
    {
        if (d.Length == 0) return;
        if (x.Length == 0)
        {
            d.Fill(identity);
            return;
        }
        var groups = new List<(int Size, bool Reduced)>();
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 1) continue; // moves nothing whether reduced or not
            if (groups.Count > 0 && groups[^1].Reduced == reduced[i]) groups[^1] = (groups[^1].Size * shape[i], reduced[i]);
            else groups.Add((shape[i], reduced[i]));
        }
        if (!groups.Any(g => g.Reduced))
        {
            x.CopyTo(d);
            return;
        }

        T[]? rented = null;
        ReadOnlySpan<T> current = x;
        while (true)
        {
            int g = groups.FindLastIndex(group => group.Reduced);
            int outer = 1, inner = 1;
            for (int i = 0; i < g; i++) outer *= groups[i].Size;
            for (int i = g + 1; i < groups.Count; i++) inner *= groups[i].Size;
            bool last = groups.FindIndex(group => group.Reduced) == g;
            T[]? next = last ? null : ArrayPool<T>.Shared.Rent(outer * inner);
            var target = last ? d : next.AsSpan(0, outer * inner);
            Block<T, TReduction>(current, outer, groups[g].Size, inner, target);
            if (rented is not null) ArrayPool<T>.Shared.Return(rented);
            if (last) return;
            rented = next;
            current = target;
            groups.RemoveAt(g);
        }
    }

    /// <summary>d[o, i] = reduction over k of x[o, k, i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Block<T, TReduction>(ReadOnlySpan<T> x, int outer, int r, int inner, Span<T> d)
        where TReduction : IReduction<T>
    {
        if (inner == 1)
        {
            for (int o = 0; o < outer; o++) d[o] = TReduction.Reduce(x.Slice(o * r, r));
            return;
        }
        for (int o = 0; o < outer; o++)
        {
            var accumulator = d.Slice(o * inner, inner);
            var block = x.Slice(o * r * inner, r * inner);
            block[..inner].CopyTo(accumulator);
            for (int k = 1; k < r; k++) TReduction.Accumulate(block.Slice(k * inner, inner), accumulator);
        }
    }
}
