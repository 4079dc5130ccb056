using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Where(condition, X, Y): X where the condition holds, else Y; the three inputs broadcast together. Any element type.</summary>
[OnnxOperator("Where", 9)]
internal sealed class Where : Operator
{
    public static Operator Create(OperatorBuildContext context) => new Where();

    public override void Run(OperatorCall call)
    {
        var condition = call.Input(0);
        var x = call.Input(1);
        var y = call.Input(2);
        if (condition.ElementType != TensorElementType.Bool)
            throw new NotSupportedException($"{call.Context.Node}: the condition is {condition.ElementType.DisplayName()}, not bool.");
        if (x.ElementType != y.ElementType)
            throw new InvalidOperationException($"{call.Context.Node}: X is {x.ElementType.DisplayName()} but Y is {y.ElementType.DisplayName()}.");
        var shape = Broadcast.Shape(Broadcast.Shape(condition.Shape, x.Shape, call.Context.Node), y.Shape, call.Context.Node);
        var output = call.Output(0, x.ElementType, shape);
        switch (x.Buffer.Data)
        {
            case float[]: Select<float>(condition, x, y, output); break;
            case double[]: Select<double>(condition, x, y, output); break;
            case Half[]: Select<Half>(condition, x, y, output); break;
            case sbyte[]: Select<sbyte>(condition, x, y, output); break;
            case byte[]: Select<byte>(condition, x, y, output); break;
            case short[]: Select<short>(condition, x, y, output); break;
            case ushort[]: Select<ushort>(condition, x, y, output); break;
            case int[]: Select<int>(condition, x, y, output); break;
            case uint[]: Select<uint>(condition, x, y, output); break;
            case long[]: Select<long>(condition, x, y, output); break;
            case ulong[]: Select<ulong>(condition, x, y, output); break;
            case bool[]: Select<bool>(condition, x, y, output); break;
            case string[]: Select<string>(condition, x, y, output); break;
            default: throw new NotSupportedException($"{call.Context.Node}: Where of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    private static void Select<T>(Tensor condition, Tensor x, Tensor y, Tensor output)
    {
        var cs = (bool[])condition.Buffer.Data;
        var xs = (T[])x.Buffer.Data;
        var ys = (T[])y.Buffer.Data;
        var ds = (T[])output.Buffer.Data;
        if (condition.Shape.SequenceEqual(output.Shape) && x.Shape.SequenceEqual(output.Shape) && y.Shape.SequenceEqual(output.Shape))
        {
            for (int i = 0; i < output.Length; i++) ds[i] = cs[i] ? xs[i] : ys[i];
            return;
        }
        var strides = new[]
        {
            Broadcast.Strides(condition.Shape, output.Shape), Broadcast.Strides(x.Shape, output.Shape), Broadcast.Strides(y.Shape, output.Shape),
        };
        Broadcast.ForEachRun(output.Shape, strides, (start, length, offsets, advancing) =>
        {
            int c = offsets[0], cStep = advancing[0] ? 1 : 0;
            int xi = offsets[1], xStep = advancing[1] ? 1 : 0;
            int yi = offsets[2], yStep = advancing[2] ? 1 : 0;
            for (int i = 0; i < length; i++, c += cStep, xi += xStep, yi += yStep)
                ds[start + i] = cs[c] ? xs[xi] : ys[yi];
        });
    }
}
