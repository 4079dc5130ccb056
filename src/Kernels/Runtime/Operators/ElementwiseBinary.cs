using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>A binary elementwise function with span forms for the three broadcast cases of a run.</summary>
internal interface IBinaryFunction<T>
{
    static abstract T Apply(T x, T y);

    /// <summary>d[i] = f(x[i], y[i]).</summary>
    static abstract void Apply(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d);

    /// <summary>d[i] = f(x[i], y).</summary>
    static abstract void Apply(ReadOnlySpan<T> x, T y, Span<T> d);

    /// <summary>d[i] = f(x, y[i]).</summary>
    static abstract void Apply(T x, ReadOnlySpan<T> y, Span<T> d);
}

/// <summary>Runs a binary function over two broadcast inputs, run by run along the last (collapsed) axis.</summary>
internal static class ElementwiseBinary
{
    public static void Run<T, TFunction>(Tensor a, Tensor b, Tensor output)
        where TFunction : IBinaryFunction<T>
    {
        var x = a.AsSpan<T>();
        var y = b.AsSpan<T>();
        var d = output.AsSpan<T>();
        if (a.Shape.SequenceEqual(b.Shape))
        {
            TFunction.Apply(x, y, d);
            return;
        }
        if (b.Length == 1)
        {
            TFunction.Apply(x.Length == d.Length ? x : Expand<T>(a, output), y[0], d);
            return;
        }
        if (a.Length == 1 && b.Length == d.Length)
        {
            TFunction.Apply(x[0], y, d);
            return;
        }
        var strides = new[] { Broadcast.Strides(a.Shape, output.Shape), Broadcast.Strides(b.Shape, output.Shape) };
        var xs = a.Buffer.Data as T[];
        var ys = b.Buffer.Data as T[];
        var ds = (T[])output.Buffer.Data;
        Broadcast.ForEachRun(output.Shape, strides, (start, length, offsets, advancing) =>
        {
            var target = ds.AsSpan(start, length);
            switch (advancing[0], advancing[1])
            {
                case (true, true): TFunction.Apply(xs.AsSpan(offsets[0], length), ys.AsSpan(offsets[1], length), target); break;
                case (true, false): TFunction.Apply(xs.AsSpan(offsets[0], length), ys![offsets[1]], target); break;
                case (false, true): TFunction.Apply(xs![offsets[0]], ys.AsSpan(offsets[1], length), target); break;
                default: target.Fill(TFunction.Apply(xs![offsets[0]], ys![offsets[1]])); break;
            }
        });
    }

    // A scalar y with an x smaller than the output (x itself broadcast): fall back to materializing x.
    private static ReadOnlySpan<T> Expand<T>(Tensor a, Tensor output)
    {
        var expanded = new T[output.Length];
        var strides = new[] { Broadcast.Strides(a.Shape, output.Shape) };
        var xs = (T[])a.Buffer.Data;
        Broadcast.ForEachRun(output.Shape, strides, (start, length, offsets, advancing) =>
        {
            if (advancing[0]) xs.AsSpan(offsets[0], length).CopyTo(expanded.AsSpan(start, length));
            else expanded.AsSpan(start, length).Fill(xs[offsets[0]]);
        });
        return expanded;
    }

    /// <summary>Allocates the broadcast output of a binary node and runs <typeparamref name="TFunction"/> for element type <typeparamref name="T"/>.</summary>
    public static void Run<T, TFunction>(OperatorCall call, TensorElementType outputType)
        where TFunction : IBinaryFunction<T>
    {
        var a = call.Input(0);
        var b = call.Input(1);
        var output = call.Output(0, outputType, Broadcast.Shape(a.Shape, b.Shape, call.Context.Node));
        Run<T, TFunction>(a, b, output);
    }
}
