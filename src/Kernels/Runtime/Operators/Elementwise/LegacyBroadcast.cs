namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The broadcasting of binary ops before opset 7: with <c>broadcast=1</c>, B's shape matches a contiguous run
/// of A's axes starting at <c>axis</c> (default: A's trailing axes). Implemented by viewing B with A's rank
/// (ones around its dimensions) and running the op's numpy broadcasting, which then gives the same result.
/// </summary>
internal sealed class LegacyBroadcast(Operator inner, int axis) : Operator
{
    /// <summary><paramref name="op"/>, wrapped when the node uses the pre-opset-7 <c>axis</c> attribute; else <paramref name="op"/> itself.</summary>
    public static Operator Wrap(OperatorBuildContext context, Operator op)
    {
        if (context.Opset >= 7 || context.Int("broadcast", 0) == 0 || context.Attribute("axis") is null) return op;
        return new LegacyBroadcast(op, (int)context.Int("axis", 0));
    }

    public override void Run(OperatorCall call)
    {
        var a = call.Input(0);
        var b = call.Input(1);
        int start = axis < 0 ? axis + a.Rank : axis;
        if (start < 0 || start + b.Rank > a.Rank)
            throw new InvalidOperationException($"{call.Context.Node}: B of shape {Tensor.Format(b.Shape)} cannot broadcast to A of shape {Tensor.Format(a.Shape)} at axis {axis}.");
        var shape = new int[a.Rank];
        Array.Fill(shape, 1);
        b.Shape.CopyTo(shape.AsSpan(start));
        var aligned = b.View(shape);
        try
        {
            var inputs = new Tensor?[call.Inputs.Length];
            call.Inputs.CopyTo(inputs);
            inputs[1] = aligned;
            var outputs = new Tensor?[call.OutputCount];
            inner.Run(new OperatorCall(inputs, outputs, call.Context));
            for (int i = 0; i < outputs.Length; i++)
            {
                if (outputs[i] is { } output) call.OutputNew(i, output);
            }
        }
        finally
        {
            aligned.Buffer.Release();
        }
    }
}
