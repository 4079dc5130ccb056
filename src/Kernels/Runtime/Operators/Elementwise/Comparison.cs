using System.Numerics;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Equal, Less, Greater with broadcasting: a bool tensor. Numbers of every type; Equal also bools and strings.</summary>
[OnnxOperator("Equal", 1)]
[OnnxOperator("Less", 1)]
[OnnxOperator("Greater", 1)]
internal sealed class Comparison(string op) : Operator
{
    public static Operator Create(OperatorBuildContext context) => LegacyBroadcast.Wrap(context, new Comparison(context.Node.OpType));

    public override void Run(OperatorCall call)
    {
        var a = call.Input(0);
        var b = call.Input(1);
        var type = a.ElementType;
        if (b.ElementType != type)
            throw new InvalidOperationException($"{call.Context.Node}: inputs of different types ({type.DisplayName()}, {b.ElementType.DisplayName()}).");
        bool supported = type is TensorElementType.Float32 or TensorElementType.Float64 or TensorElementType.Float16
            or TensorElementType.Int8 or TensorElementType.UInt8 or TensorElementType.Int16 or TensorElementType.UInt16
            or TensorElementType.Int32 or TensorElementType.UInt32 or TensorElementType.Int64 or TensorElementType.UInt64
            || (op == "Equal" && type is TensorElementType.Bool or TensorElementType.String);
        if (!supported)
            throw new NotSupportedException($"{call.Context.Node}: {op} of {type.DisplayName()} is not supported.");
        var output = call.Output(0, TensorElementType.Bool, Broadcast.Shape(a.Shape, b.Shape, call.Context.Node));
        switch (type)
        {
            case TensorElementType.Float32: Numeric<float>(a, b, output); break;
            case TensorElementType.Float64: Numeric<double>(a, b, output); break;
            case TensorElementType.Float16: Numeric<Half>(a, b, output); break;
            case TensorElementType.Int8: Numeric<sbyte>(a, b, output); break;
            case TensorElementType.UInt8: Numeric<byte>(a, b, output); break;
            case TensorElementType.Int16: Numeric<short>(a, b, output); break;
            case TensorElementType.UInt16: Numeric<ushort>(a, b, output); break;
            case TensorElementType.Int32: Numeric<int>(a, b, output); break;
            case TensorElementType.UInt32: Numeric<uint>(a, b, output); break;
            case TensorElementType.Int64: Numeric<long>(a, b, output); break;
            case TensorElementType.UInt64: Numeric<ulong>(a, b, output); break;
            case TensorElementType.Bool when op == "Equal": BroadcastMap.Binary<bool, bool, bool, EquatableMap<bool>>(a, b, output); break;
            case TensorElementType.String when op == "Equal": BroadcastMap.Binary<string, string, bool, EquatableMap<string>>(a, b, output); break;
            default: throw new NotSupportedException($"{call.Context.Node}: {op} of {type.DisplayName()} is not supported.");
        }
    }

    private void Numeric<T>(Tensor a, Tensor b, Tensor output) where T : IComparisonOperators<T, T, bool>
    {
        switch (op)
        {
            case "Equal": BroadcastMap.Binary<T, T, bool, EqualMap<T>>(a, b, output); break;
            case "Less": BroadcastMap.Binary<T, T, bool, LessMap<T>>(a, b, output); break;
            default: BroadcastMap.Binary<T, T, bool, GreaterMap<T>>(a, b, output); break;
        }
    }
}

/// <summary>And, Or (bool, with broadcasting) and Not.</summary>
[OnnxOperator("And", 1)]
[OnnxOperator("Or", 1)]
[OnnxOperator("Not", 1)]
internal sealed class Logical(string op) : Operator
{
    public static Operator Create(OperatorBuildContext context) => LegacyBroadcast.Wrap(context, new Logical(context.Node.OpType));

    public override void Run(OperatorCall call)
    {
        var a = call.Input(0);
        if (a.ElementType != TensorElementType.Bool)
            throw new NotSupportedException($"{call.Context.Node}: {op} of {a.ElementType.DisplayName()} is not supported (bool only).");
        if (op == "Not")
        {
            var source = a.AsSpan<bool>();
            var target = call.Output(0, TensorElementType.Bool, a.ShapeArray).AsSpan<bool>();
            for (int i = 0; i < source.Length; i++) target[i] = !source[i];
            return;
        }
        var b = call.Input(1);
        if (b.ElementType != TensorElementType.Bool)
            throw new NotSupportedException($"{call.Context.Node}: {op} of {b.ElementType.DisplayName()} is not supported (bool only).");
        var output = call.Output(0, TensorElementType.Bool, Broadcast.Shape(a.Shape, b.Shape, call.Context.Node));
        if (op == "And") BroadcastMap.Binary<bool, bool, bool, AndMap>(a, b, output);
        else BroadcastMap.Binary<bool, bool, bool, OrMap>(a, b, output);
    }
}
