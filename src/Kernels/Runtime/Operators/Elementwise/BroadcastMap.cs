using System.Runtime.CompilerServices;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>A function of two elements whose types may differ from each other and from the result (comparisons, mixed-type Pow).</summary>
internal interface IElementMap<T1, T2, TResult>
{
    static abstract TResult Apply(T1 x, T2 y);
}

/// <summary>
/// Element-by-element maps over broadcast inputs of any storage type, run by run along the collapsed last
/// axis. For the functions TensorPrimitives cannot vectorize (mixed types, bool results, strings).
/// </summary>
internal static class BroadcastMap
{
    /// <summary>output[i] = TMap(a[i], b[i]) with numpy broadcasting; <paramref name="output"/> has the broadcast shape.</summary>
    public static void Binary<T1, T2, TResult, TMap>(Tensor a, Tensor b, Tensor output)
        where TMap : IElementMap<T1, T2, TResult>
    {
        var xs = (T1[])a.Buffer.Data;
        var ys = (T2[])b.Buffer.Data;
        var ds = (TResult[])output.Buffer.Data;
        if (a.Shape.SequenceEqual(output.Shape) && b.Shape.SequenceEqual(output.Shape))
        {
            Run<T1, T2, TResult, TMap>(xs, 0, 1, ys, 0, 1, ds, 0, output.Length);
            return;
        }
        var strides = new[] { Broadcast.Strides(a.Shape, output.Shape), Broadcast.Strides(b.Shape, output.Shape) };
        Broadcast.ForEachRun(output.Shape, strides, (start, length, offsets, advancing) =>
            Run<T1, T2, TResult, TMap>(xs, offsets[0], advancing[0] ? 1 : 0, ys, offsets[1], advancing[1] ? 1 : 0, ds, start, length));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<T1, T2, TResult, TMap>(T1[] x, int xo, int xs, T2[] y, int yo, int ys, TResult[] d, int start, int length)
        where TMap : IElementMap<T1, T2, TResult>
    {
        var target = d.AsSpan(start, length);
        if (xs == 1 && ys == 1)
        {
            var left = x.AsSpan(xo, length);
            var right = y.AsSpan(yo, length);
            for (int i = 0; i < target.Length; i++) target[i] = TMap.Apply(left[i], right[i]);
        }
        else if (xs == 1)
        {
            var left = x.AsSpan(xo, length);
            T2 right = y[yo];
            for (int i = 0; i < target.Length; i++) target[i] = TMap.Apply(left[i], right);
        }
        else if (ys == 1)
        {
            T1 left = x[xo];
            var right = y.AsSpan(yo, length);
            for (int i = 0; i < target.Length; i++) target[i] = TMap.Apply(left, right[i]);
        }
        else
        {
            target.Fill(TMap.Apply(x[xo], y[yo]));
        }
    }

    /// <summary>The broadcast shape of any number of shapes.</summary>
    public static int[] Shape(ReadOnlySpan<Tensor?> inputs, string node)
    {
        int[] shape = [];
        foreach (var input in inputs)
        {
            if (input is not null) shape = Broadcast.Shape(shape, input.Shape, node);
        }
        return shape;
    }
}

/// <summary>x == y for numbers (NaN equals nothing).</summary>
internal readonly struct EqualMap<T> : IElementMap<T, T, bool> where T : System.Numerics.IEqualityOperators<T, T, bool>
{
    public static bool Apply(T x, T y) => x == y;
}

/// <summary>Equality of bools and strings (ordinal).</summary>
internal readonly struct EquatableMap<T> : IElementMap<T, T, bool> where T : IEquatable<T>
{
    public static bool Apply(T x, T y) => x.Equals(y);
}

internal readonly struct LessMap<T> : IElementMap<T, T, bool> where T : System.Numerics.IComparisonOperators<T, T, bool>
{
    public static bool Apply(T x, T y) => x < y;
}

internal readonly struct GreaterMap<T> : IElementMap<T, T, bool> where T : System.Numerics.IComparisonOperators<T, T, bool>
{
    public static bool Apply(T x, T y) => x > y;
}

internal readonly struct AndMap : IElementMap<bool, bool, bool>
{
    public static bool Apply(bool x, bool y) => x & y;
}

internal readonly struct OrMap : IElementMap<bool, bool, bool>
{
    public static bool Apply(bool x, bool y) => x | y;
}
