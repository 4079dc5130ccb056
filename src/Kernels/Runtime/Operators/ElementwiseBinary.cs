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
    public static void Run<T, TFunction>(Tensor a, Tensor b, Tensor output, int threads = 1)
        where TFunction : IBinaryFunction<T>
    {
        var xs = a.Buffer.Data as T[];
        var ys = b.Buffer.Data as T[];
        var ds = (T[])output.Buffer.Data;
        int length = output.Length;
        if (a.Shape.SequenceEqual(b.Shape))
        {
            ParallelRanges.ForElements(length, threads, (start, end) =>
                TFunction.Apply(xs.AsSpan(start, end - start), ys.AsSpan(start, end - start), ds.AsSpan(start, end - start)));
            return;
        }
        if (b.Length == 1)
        {
            if (a.Length != length) xs = Expand<T>(a, output);
            T y = ys![0];
            ParallelRanges.ForElements(length, threads, (start, end) => TFunction.Apply(xs.AsSpan(start, end - start), y, ds.AsSpan(start, end - start)));
            return;
        }
        if (a.Length == 1 && b.Length == length)
        {
            T x = xs![0];
            ParallelRanges.ForElements(length, threads, (start, end) => TFunction.Apply(x, ys.AsSpan(start, end - start), ds.AsSpan(start, end - start)));
            return;
        }
        var strides = new[] { Broadcast.Strides(a.Shape, output.Shape), Broadcast.Strides(b.Shape, output.Shape) };
        var shape = output.ShapeArray;
        var (runs, runLength) = Broadcast.RunShape(shape, strides);
        ParallelRanges.For(runs, runLength, threads, (first, end) => Broadcast.ForEachRun(shape, strides, (start, length, offsets, advancing) =>
        {
            var target = ds.AsSpan(start, length);
            switch (advancing[0], advancing[1])
            {
                case (true, true): TFunction.Apply(xs.AsSpan(offsets[0], length), ys.AsSpan(offsets[1], length), target); break;
                case (true, false): TFunction.Apply(xs.AsSpan(offsets[0], length), ys![offsets[1]], target); break;
                case (false, true): TFunction.Apply(xs![offsets[0]], ys.AsSpan(offsets[1], length), target); break;
                default: target.Fill(TFunction.Apply(xs![offsets[0]], ys![offsets[1]])); break;
            }
        }, first, end));
    }

    // A scalar y with an x smaller than the output (x itself broadcast): fall back to materializing x.
    private static T[] Expand<T>(Tensor a, Tensor output)
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
        Run<T, TFunction>(a, b, output, call.Context.DegreeOfParallelism);
    }
}
