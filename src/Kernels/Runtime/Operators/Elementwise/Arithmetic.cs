using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Add, Sub, Mul, Div with broadcasting, for every numeric element type (float16 computed in float32);
/// before opset 7 with the legacy axis broadcasting (<see cref="LegacyBroadcast"/>).
/// </summary>
[OnnxOperator("Add", 1)]
[OnnxOperator("Sub", 1)]
[OnnxOperator("Mul", 1)]
[OnnxOperator("Div", 1)]
internal sealed class Arithmetic(string op) : Operator
{
    public static Operator Create(OperatorBuildContext context) => LegacyBroadcast.Wrap(context, new Arithmetic(context.Node.OpType));

    public override void Run(OperatorCall call)
    {
        var type = call.Input(0).ElementType;
        switch (type)
        {
            case TensorElementType.Float32: Dispatch<float>(call, type); break;
            case TensorElementType.Float64: Dispatch<double>(call, type); break;
            case TensorElementType.Int32: Dispatch<int>(call, type); break;
            case TensorElementType.Int64: Dispatch<long>(call, type); break;
            case TensorElementType.Int16: Dispatch<short>(call, type); break;
            case TensorElementType.Int8: Dispatch<sbyte>(call, type); break;
            case TensorElementType.UInt8: Dispatch<byte>(call, type); break;
            case TensorElementType.UInt16: Dispatch<ushort>(call, type); break;
            case TensorElementType.UInt32: Dispatch<uint>(call, type); break;
            case TensorElementType.UInt64: Dispatch<ulong>(call, type); break;
            case TensorElementType.Float16: FloatWidening.Binary(call, Dispatch<float>); break;
            default: throw new NotSupportedException($"{call.Context.Node}: {op} of {type.DisplayName()} is not supported.");
        }
    }

    private void Dispatch<T>(OperatorCall call, TensorElementType type) where T : unmanaged, INumber<T>
    {
        switch (op)
        {
            case "Add": ElementwiseBinary.Run<T, AddFunction<T>>(call, type); break;
            case "Sub": ElementwiseBinary.Run<T, SubtractFunction<T>>(call, type); break;
            case "Mul": ElementwiseBinary.Run<T, MultiplyFunction<T>>(call, type); break;
            default: ElementwiseBinary.Run<T, DivideFunction<T>>(call, type); break;
        }
    }
}

internal readonly struct AddFunction<T> : IBinaryFunction<T> where T : INumber<T>
{
    public static T Apply(T x, T y) => x + y;
    public static void Apply(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Add(x, y, d);
    public static void Apply(ReadOnlySpan<T> x, T y, Span<T> d) => TensorPrimitives.Add(x, y, d);
    public static void Apply(T x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Add(y, x, d);
}

internal readonly struct SubtractFunction<T> : IBinaryFunction<T> where T : INumber<T>
{
    public static T Apply(T x, T y) => x - y;
    public static void Apply(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Subtract(x, y, d);
    public static void Apply(ReadOnlySpan<T> x, T y, Span<T> d) => TensorPrimitives.Subtract(x, y, d);
    public static void Apply(T x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Subtract(x, y, d);
}

internal readonly struct MultiplyFunction<T> : IBinaryFunction<T> where T : INumber<T>
{
    public static T Apply(T x, T y) => x * y;
    public static void Apply(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Multiply(x, y, d);
    public static void Apply(ReadOnlySpan<T> x, T y, Span<T> d) => TensorPrimitives.Multiply(x, y, d);
    public static void Apply(T x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Multiply(y, x, d);
}

internal readonly struct DivideFunction<T> : IBinaryFunction<T> where T : INumber<T>
{
    public static T Apply(T x, T y) => x / y;
    public static void Apply(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Divide(x, y, d);
    public static void Apply(ReadOnlySpan<T> x, T y, Span<T> d) => TensorPrimitives.Divide(x, y, d);
    public static void Apply(T x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Divide(x, y, d);
}
