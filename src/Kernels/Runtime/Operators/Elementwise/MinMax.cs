using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Min and Max of one or more inputs, all broadcast together; NaN wins for floats (as numpy's minimum/maximum).
/// Every numeric type, float16 through float32.
/// </summary>
[OnnxOperator("Min", 1)]
[OnnxOperator("Max", 1)]
internal sealed class MinMax(bool max) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        if (context.Node.Input.Count == 0) throw context.Unsupported($"{context.Node.OpType} without inputs");
        return new MinMax(context.Node.OpType == "Max");
    }

    public override void Run(OperatorCall call)
    {
        var type = call.Input(0).ElementType;
        switch (type)
        {
            case TensorElementType.Float32: Fold<float>(call, type); break;
            case TensorElementType.Float64: Fold<double>(call, type); break;
            case TensorElementType.Int8: Fold<sbyte>(call, type); break;
            case TensorElementType.UInt8: Fold<byte>(call, type); break;
            case TensorElementType.Int16: Fold<short>(call, type); break;
            case TensorElementType.UInt16: Fold<ushort>(call, type); break;
            case TensorElementType.Int32: Fold<int>(call, type); break;
            case TensorElementType.UInt32: Fold<uint>(call, type); break;
            case TensorElementType.Int64: Fold<long>(call, type); break;
            case TensorElementType.UInt64: Fold<ulong>(call, type); break;
            case TensorElementType.Float16: FloatWidening.Any(call, Fold<float>); break;
            default: throw new NotSupportedException($"{call.Context.Node}: {(max ? "Max" : "Min")} of {type.DisplayName()} is not supported.");
        }
    }

    private void Fold<T>(OperatorCall call, TensorElementType type) where T : unmanaged, INumber<T>
    {
        var inputs = call.Inputs;
        foreach (var input in inputs)
        {
            if (input is null || input.ElementType != type)
                throw new InvalidOperationException($"{call.Context.Node}: every input must be present and of type {type.DisplayName()}.");
        }
        var output = call.Output(0, type, BroadcastMap.Shape(inputs, call.Context.Node));
        var first = inputs[0]!;
        int next;
        if (inputs.Length > 1 && Broadcast.Shape(first.Shape, inputs[1]!.Shape, call.Context.Node).AsSpan().SequenceEqual(output.Shape))
        {
            Combine<T>(first, inputs[1]!, output);
            next = 2;
        }
        else
        {
            // The first input, stretched to the output shape; the others then fold into it in place.
            Copy<T>(first, output);
            next = 1;
        }
        for (int i = next; i < inputs.Length; i++) Combine<T>(output, inputs[i]!, output);
    }

    private void Combine<T>(Tensor a, Tensor b, Tensor output) where T : unmanaged, INumber<T>
    {
        if (max) ElementwiseBinary.Run<T, MaxFunction<T>>(a, b, output);
        else ElementwiseBinary.Run<T, MinFunction<T>>(a, b, output);
    }

    private static void Copy<T>(Tensor source, Tensor output)
    {
        var xs = (T[])source.Buffer.Data;
        var ds = (T[])output.Buffer.Data;
        var strides = new[] { Broadcast.Strides(source.Shape, output.Shape) };
        Broadcast.ForEachRun(output.Shape, strides, (start, length, offsets, advancing) =>
        {
            if (advancing[0]) xs.AsSpan(offsets[0], length).CopyTo(ds.AsSpan(start, length));
            else ds.AsSpan(start, length).Fill(xs[offsets[0]]);
        });
    }
}

internal readonly struct MaxFunction<T> : IBinaryFunction<T> where T : INumber<T>
{
    public static T Apply(T x, T y) => T.Max(x, y);
    public static void Apply(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Max(x, y, d);
    public static void Apply(ReadOnlySpan<T> x, T y, Span<T> d) => TensorPrimitives.Max(x, y, d);
    public static void Apply(T x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Max(y, x, d);
}

internal readonly struct MinFunction<T> : IBinaryFunction<T> where T : INumber<T>
{
    public static T Apply(T x, T y) => T.Min(x, y);
    public static void Apply(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Min(x, y, d);
    public static void Apply(ReadOnlySpan<T> x, T y, Span<T> d) => TensorPrimitives.Min(x, y, d);
    public static void Apply(T x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Min(y, x, d);
}
