namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Identity, and Dropout in inference (its optional mask output is all true).</summary>
[OnnxOperator("Identity", 1)]
[OnnxOperator("Dropout", 1)]
internal sealed class Identity : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        if (context.Node.OpType == "Dropout" && context.Int("is_test", 1) == 0 && context.Opset < 7)
            throw context.Unsupported("Dropout in training mode");
        return new Identity();
    }

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        // Dropout's third input (opset 12+) asks for training mode: random, not supported.
        if (call.OptionalInput(2) is { } mode && mode.AsSpan<bool>()[0])
            throw new NotSupportedException($"{call.Context.Node}: Dropout in training mode is not supported.");
        call.OutputView(0, input, input.ShapeArray);
        if (call.OutputCount > 1)
        {
            var mask = call.Output(1, Models.TensorElementType.Bool, input.ShapeArray);
            mask.AsSpan<bool>().Fill(true);
        }
    }
}
